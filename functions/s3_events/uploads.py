"""A presigned upload's bytes have landed: validate and normalize them, then mark the upload (and the
training image it stands for) ready or rejected with the reason."""

from __future__ import annotations

import logging

from events.lifecycle import JobError
from events.records.uploads import UploadPurpose, UploadRecord
from events.states import UploadStatus
from events.storage_keys import UploadRef, upload_image_key, upload_raw_key
from events.usecases.errors import QuotaExceeded
from events.usecases.quotas import require_image_room
from events.usecases.training_data import image_facts, store_training_image
from infra.images import ImageRejected, NormalizedImage, normalize_upload
from infra.metrics import QUOTA_REFUSALS
from infra.runtime import ServiceContext

log = logging.getLogger(__name__)


def _training_image_of(upload: UploadRecord) -> tuple[str, str]:
    """The model and data id of the training image a training-data upload stands for."""
    assert upload.modelId is not None and upload.dataId is not None  # set on every training-data upload
    return upload.modelId, upload.dataId


async def _reject(context: ServiceContext, upload: UploadRecord, code: str, message: str) -> None:
    error = JobError(code=code, message=message)
    if upload.purpose is UploadPurpose.TRAINING_DATA:
        item = await context.training_data.get(*_training_image_of(upload))
        if item is not None and item.status is UploadStatus.PENDING:
            await context.training_data.put(item.model_copy(update={"status": UploadStatus.REJECTED, "error": error}))
    await context.uploads.settle(upload.uploadId, UploadStatus.REJECTED, {"error": error})


async def _accept(context: ServiceContext, upload: UploadRecord, image: NormalizedImage) -> None:
    fields = image_facts(image)
    if upload.purpose is UploadPurpose.TRAINING_DATA:
        model_id, data_id = _training_image_of(upload)
        model = await context.models.get_live(upload.tenantId, model_id)
        if model is None:
            await _reject(context, upload, "model_not_found", "the model was deleted before its image arrived")
            return
        stored = await context.training_data.get(model_id, data_id)
        if stored is not None and stored.status is UploadStatus.READY:
            # A delivery before this one stored the image (and counted its bytes) but did not settle the upload:
            # settle it only, or the bytes would be counted twice.
            fields["key"] = stored.key
        else:
            try:
                # The pending image itself was counted when its upload was presigned: nothing more is added.
                await require_image_room(context, upload.tenantId, model_id, adding=0)
                # A description set while the image was pending is its caption: it stays.
                description = stored.description if stored is not None else None
                item = await store_training_image(
                    context, model_id, upload.tenantId, image, data_id, upload.name, description=description
                )
            except QuotaExceeded as exc:
                # Nobody waits on this request to answer 429: the image is rejected with the quota's words.
                QUOTA_REFUSALS.labels(limit=str(exc.details.get("quota", exc.code))).inc()
                await _reject(context, upload, exc.code, exc.message)
                return
            fields["key"] = item.key
    else:
        key = upload_image_key(upload.tenantId, upload.uploadId)
        await context.store.put_bytes(key, image.png, "image/png")
        fields["key"] = key
    await context.uploads.settle(upload.uploadId, UploadStatus.READY, fields)


async def apply_upload(context: ServiceContext, ref: UploadRef) -> None:
    """Process one raw upload; a duplicate or late notification changes nothing."""
    upload = await context.uploads.get(ref.upload_id)
    if upload is None or upload.tenantId != ref.tenant_id:
        log.warning("raw upload %s/%s has no live upload record: ignored", ref.tenant_id, ref.upload_id)
        return
    if upload.status is not UploadStatus.PENDING:
        return
    raw_key = upload_raw_key(ref.tenant_id, ref.upload_id)
    data = await context.store.get_bytes(raw_key)
    if data is None:
        return  # deleted after a first delivery processed it
    try:
        image = await normalize_upload(context.settings, data, context.settings.max_presigned_upload_bytes)
    except ImageRejected as exc:
        await _reject(context, upload, exc.code, str(exc))
    else:
        await _accept(context, upload, image)
    # The raw bytes are not needed any more: what is kept is the normalized image.
    await context.store.delete(raw_key)
