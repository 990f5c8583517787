"""What a training reads before it starts: its images, and where an earlier attempt left off."""

from __future__ import annotations

import asyncio
import io
import logging
from dataclasses import dataclass, field

from PIL import Image

from events.storage_keys import EPOCH_MARKER_NAME, training_epoch_keys, training_prefix
from events.training import TrainingRequestedData
from infra.storage import ArtifactStore
from workers.job_errors import TrainingDataMissing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingInputs:
    """A training's decoded images and their data keys (aligned: a deleted image is in neither), and the snapshot
    and names of the epochs an earlier attempt completed."""

    images: list[Image.Image]
    resume: bytes | None
    epochs_done: list[str]
    keys: list[str] = field(default_factory=list)


async def load_training_inputs(store: ArtifactStore, data: TrainingRequestedData) -> TrainingInputs:
    """The images and the last complete epoch's snapshot; raises TrainingDataMissing when no image is left."""
    resume, done = await latest_snapshot(store, data.trainingId)
    keys, images = await training_images(store, data.dataKeys)
    return TrainingInputs(images=images, resume=resume, epochs_done=done, keys=keys)


async def latest_snapshot(store: ArtifactStore, training_id: str) -> tuple[bytes | None, list[str]]:
    """The snapshot of the last complete epoch (its marker exists), and the epochs done."""
    keys = await store.list_keys(f"{training_prefix(training_id)}checkpoints/")
    done = sorted(k.split("/")[-2] for k in keys if k.endswith("/" + EPOCH_MARKER_NAME))
    if not done:
        return None, []
    _, state_key, _ = training_epoch_keys(training_id, done[-1])
    return await store.get_bytes(state_key), done


async def training_images(store: ArtifactStore, keys: list[str]) -> tuple[list[str], list[Image.Image]]:
    """The keys and images (RGB) still there, aligned; a deleted one is skipped, all of them gone is an error."""
    blobs = await asyncio.gather(*(store.get_bytes(k) for k in keys))
    found = [(key, blob) for key, blob in zip(keys, blobs, strict=True) if blob is not None]
    images = [Image.open(io.BytesIO(blob)).convert("RGB") for _, blob in found]
    if not images:
        raise TrainingDataMissing("none of the training images exist any more")
    if len(images) < len(keys):
        log.warning("%d of %d training images are gone; training on the rest", len(keys) - len(images), len(keys))
    return [key for key, _ in found], images
