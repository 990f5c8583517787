"""The captions marker through the real path: the trainer's `captions.json` written to the moto server, its
notification taken from SQS by the session's poller, each caption recorded on its training image."""

from __future__ import annotations

import secrets

import pytest

from events.records.training_data import TrainingImageRecord
from events.states import UploadStatus
from events.storage_keys import model_data_key, training_captions_key
from functions.s3_events.captions import apply_captions
from tests.support import eventually
from workers.trainer.captioning import write_automatic_captions

pytestmark = pytest.mark.integration


async def _image(context, model_id: str, data_id: str, digest: str) -> TrainingImageRecord:
    key = model_data_key(model_id, data_id, digest)
    record = TrainingImageRecord(
        modelId=model_id, dataId=data_id, tenantId="tenant-a", status=UploadStatus.READY, key=key
    )
    return await context.training_data.put(record)


async def test_captions_marker_records_each_caption_on_its_image(context, poller) -> None:
    model_id = f"mod_{secrets.token_hex(8)}"
    training_id = f"trn_{secrets.token_hex(8)}"
    kept = await _image(context, model_id, "dat_kept", "a" * 64)
    deleted = await _image(context, model_id, "dat_deleted", "b" * 64)
    replaced = await _image(context, model_id, "dat_replaced", "c" * 64)
    await context.training_data.delete(model_id, deleted.dataId)
    # Replaced after the training read it: the new bytes are not the image that was captioned.
    await _image(context, model_id, "dat_replaced", "d" * 64)
    captions = {kept.key: "a red cat on a sofa", deleted.key: "a dog", replaced.key: "a blue sofa"}

    await write_automatic_captions(context.store, training_id, captions)

    recorded = await eventually(
        lambda: context.training_data.get(model_id, kept.dataId),
        lambda record: record is not None and record.automaticCaptioning is not None,
        timeout_s=30,
        what="the automatic caption on the training image",
    )
    assert recorded.automaticCaptioning == "a red cat on a sofa"
    assert await context.training_data.get(model_id, deleted.dataId) is None  # not re-created
    now_replaced = await context.training_data.get(model_id, replaced.dataId)
    assert now_replaced is not None and now_replaced.automaticCaptioning is None

    # A redelivered notification changes nothing, not even the record's updatedAt.
    assert await apply_captions(context, training_captions_key(training_id), training_id) == 0
    assert await context.training_data.get(model_id, kept.dataId) == recorded


async def test_no_automatic_captions_write_no_marker(context) -> None:
    training_id = f"trn_{secrets.token_hex(8)}"
    await write_automatic_captions(context.store, training_id, {})
    assert await context.store.get_bytes(training_captions_key(training_id)) is None
