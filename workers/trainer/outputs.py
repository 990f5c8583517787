"""What a training writes: progress, every epoch's checkpoint and samples, then the adapter and its marker.

Each write that announces something (an epoch's marker, the result marker) goes after the objects it names,
because its S3 notification is what tells the world they are there.
"""

from __future__ import annotations

import asyncio
import io
import logging

from PIL import Image

from events.envelope import utcnow
from events.storage_keys import (
    Marker,
    training_adapter_key,
    training_epoch_keys,
    training_marker_key,
    training_sample_key,
)
from events.training import EpochCheckpoint, TrainingCanceled, TrainingProgress, TrainingResult, epoch_name
from infra.storage import ArtifactStore
from workers.trainer.loop import EpochReport

log = logging.getLogger(__name__)


def encode_png(image: Image.Image) -> bytes:
    """A sample image as PNG bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


class TrainingOutputs:
    """The objects of one training in the artifact store."""

    def __init__(self, store: ArtifactStore, training_id: str) -> None:
        self.store = store
        self.training_id = training_id

    async def progress(self, snapshot: TrainingProgress) -> None:
        """Replace progress.json."""
        await self.store.put_model(training_marker_key(self.training_id, Marker.PROGRESS), snapshot)

    async def epoch(self, report: EpochReport) -> None:
        """One epoch's adapter, snapshot and samples, then its marker."""
        training_id = self.training_id
        epoch = epoch_name(report.epoch)
        adapter_key, state_key, marker_key = training_epoch_keys(training_id, epoch)
        sample_keys = [training_sample_key(training_id, epoch, i) for i in range(len(report.samples))]
        encoded = [encode_png(image) for image in report.samples]
        store = self.store
        await asyncio.gather(
            store.put_bytes(adapter_key, report.adapter, "application/octet-stream"),
            store.put_bytes(state_key, report.snapshot, "application/octet-stream"),
            *(store.put_bytes(k, b, "image/png") for k, b in zip(sample_keys, encoded, strict=True)),
        )
        await store.put_model(
            marker_key,
            EpochCheckpoint(
                trainingId=training_id,
                epoch=epoch,
                step=report.step,
                adapterKey=adapter_key,
                sampleKeys=sample_keys,
                loss=round(report.loss, 6),
                createdAt=utcnow(),
            ),
        )
        log.info("training %s: epoch %s written at step %d", training_id, epoch, report.step)

    async def canceled(self, marker: TrainingCanceled) -> None:
        """The canceled marker."""
        await self.store.put_model(training_marker_key(self.training_id, Marker.CANCELED), marker)

    async def adapter(self, adapter: bytes) -> str:
        """The final adapter; returns its key."""
        key = training_adapter_key(self.training_id)
        await self.store.put_bytes(key, adapter, "application/octet-stream")
        return key

    async def result(self, result: TrainingResult) -> None:
        """The result marker: written last, after the adapter it names."""
        await self.store.put_model(training_marker_key(self.training_id, Marker.RESULT), result)
