"""What each training image is trained on: the caption the request gave it, or, where it has none and the training
asks for it, a caption from the operator's captioning model, with the trigger word woven in.

(Skeleton: automatic captioning is not wired yet; images without a caption train on the concept prompt.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image

from events.training import TrainingRequestedData
from infra.settings import Settings
from infra.storage import ArtifactStore


@dataclass(frozen=True)
class TrainingPrompts:
    """The prompt of each image (aligned with the keys given), and the captions made automatically now, by key."""

    prompts: list[str]
    automatic: dict[str, str] = field(default_factory=dict)


def training_prompts(
    data: TrainingRequestedData, keys: Sequence[str], images: Sequence[Image.Image], settings: Settings
) -> TrainingPrompts:
    """The prompts of the images at `keys` (a subset of `data.dataKeys`, aligned with `images`); runs in the model
    thread, since captioning runs a model."""
    given = dict(zip(data.dataKeys, data.captions or [None] * len(data.dataKeys), strict=True))
    return TrainingPrompts(prompts=[given[key] or data.parameters.conceptPrompt for key in keys])


async def write_automatic_captions(store: ArtifactStore, training_id: str, captions: dict[str, str]) -> None:
    """Record the captions made automatically, for the API to show on each training image."""
    return None
