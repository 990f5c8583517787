"""What a training reads before it starts: its images, and where an earlier attempt left off."""

from __future__ import annotations

import asyncio
import io
import logging
from dataclasses import dataclass

from PIL import Image

from events.storage_keys import EPOCH_MARKER_NAME, training_epoch_keys, training_prefix
from events.training import TrainingRequestedData
from infra.storage import ArtifactStore
from workers.job_errors import TrainingDataMissing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingInputs:
    """A training's decoded images, and the snapshot and names of the epochs an earlier attempt completed."""

    images: list[Image.Image]
    resume: bytes | None
    epochs_done: list[str]


async def load_training_inputs(store: ArtifactStore, data: TrainingRequestedData) -> TrainingInputs:
    """The images and the last complete epoch's snapshot; raises TrainingDataMissing when no image is left."""
    resume, done = await latest_snapshot(store, data.trainingId)
    images = await training_images(store, data.dataKeys)
    return TrainingInputs(images=images, resume=resume, epochs_done=done)


async def latest_snapshot(store: ArtifactStore, training_id: str) -> tuple[bytes | None, list[str]]:
    """The snapshot of the last complete epoch (its marker exists), and the epochs done."""
    keys = await store.list_keys(f"{training_prefix(training_id)}checkpoints/")
    done = sorted(k.split("/")[-2] for k in keys if k.endswith("/" + EPOCH_MARKER_NAME))
    if not done:
        return None, []
    _, state_key, _ = training_epoch_keys(training_id, done[-1])
    return await store.get_bytes(state_key), done


async def training_images(store: ArtifactStore, keys: list[str]) -> list[Image.Image]:
    """The training images still there, as RGB; a deleted one is skipped, all of them gone is an error."""
    blobs = await asyncio.gather(*(store.get_bytes(k) for k in keys))
    images = [Image.open(io.BytesIO(b)).convert("RGB") for b in blobs if b is not None]
    if not images:
        raise TrainingDataMissing("none of the training images exist any more")
    if len(images) < len(keys):
        log.warning("%d of %d training images are gone; training on the rest", len(keys) - len(images), len(keys))
    return images
