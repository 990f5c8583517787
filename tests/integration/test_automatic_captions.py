"""Automatic captions through the real stores: the trainer's `captions.json` written to the moto server, its
notification taken from SQS by the session's poller, each caption recorded on its training image; and a captioning
model the operator put under an s3:// prefix, downloaded, loaded once and kept."""

from __future__ import annotations

import asyncio
import secrets

import pytest
from PIL import Image

from events.records.training_data import TrainingImageRecord
from events.states import UploadStatus
from events.storage_keys import model_data_key, training_captions_key
from functions.s3_events.captions import apply_captions
from tests.support import eventually, training_request
from tests.tiny_captioner import build_tiny_blip
from workers.trainer.captioning import captioner_for, training_prompts, write_automatic_captions

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


async def test_a_captioning_model_under_an_s3_prefix_captions_as_its_folder_does_and_is_kept(
    context, bootstrapped, tmp_path
) -> None:
    local = build_tiny_blip(tmp_path / "tiny-blip")
    prefix = f"captioners/{secrets.token_hex(4)}/tiny-blip"
    for path in local.iterdir():
        await context.store.put_bytes(f"{prefix}/{path.name}", path.read_bytes(), "application/octet-stream")
    uri = f"s3://{bootstrapped.bucket}/{prefix}"
    settings = bootstrapped.model_copy(
        update={"captioning_model": uri, "model_cache_dir": tmp_path / "cache", "torch_device": "cpu"}
    )
    base = training_request(f"trn_{secrets.token_hex(8)}")
    data = base.model_copy(update={"parameters": base.parameters.model_copy(update={"autoCaption": True})})
    image = Image.new("RGB", (48, 40), (200, 30, 30))

    from_s3 = await asyncio.to_thread(training_prompts, data, data.dataKeys, [image], settings)
    local_settings = settings.model_copy(update={"captioning_model": str(local)})
    from_folder = await asyncio.to_thread(training_prompts, data, data.dataKeys, [image], local_settings)

    assert from_s3.automatic and from_s3 == from_folder  # the same model, wherever it was read from
    assert await asyncio.to_thread(captioner_for, settings) is await asyncio.to_thread(captioner_for, settings)
