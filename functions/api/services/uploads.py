"""Uploads: direct (validated in the request) or presigned (validated when S3 announces the bytes)."""

from __future__ import annotations

import secrets

from events.records.models import ModelRecord
from events.records.training_data import TrainingImageRecord
from events.records.uploads import UploadPurpose, UploadRecord
from events.states import UploadStatus
from events.storage_keys import upload_image_key, upload_raw_key
from events.usecases.training_data import image_facts
from functions.api.errors import ApiError
from functions.api.schemas.images import JobErrorOut
from functions.api.schemas.uploads import PresignedPost, UploadOut
from functions.api.services.training_data import new_data_id, validate_image
from infra.images import NormalizedImage
from infra.repositories.uploads import expires_at_iso
from infra.runtime import ServiceContext

UPLOAD_KEY_PREFIX = "upl_"


def new_upload_id() -> str:
    """A fresh, unguessable upload id (the headshot API's `key`)."""
    return f"{UPLOAD_KEY_PREFIX}{secrets.token_hex(12)}"


async def upload_image(context: ServiceContext, tenant_id: str, data: bytes, name: str | None) -> UploadRecord:
    """Validate and keep one image under a fresh key that expires (the headshot API's upload endpoint)."""
    image = await validate_image(context, data, field="file")
    upload_id = new_upload_id()
    key = upload_image_key(tenant_id, upload_id)
    await context.store.put_bytes(key, image.png, "image/png")
    return await context.uploads.create(
        UploadRecord(
            uploadId=upload_id,
            tenantId=tenant_id,
            purpose=UploadPurpose.IMAGE,
            status=UploadStatus.READY,
            key=key,
            name=name,
            **image_facts(image),
        ),
        context.settings.upload_expiry_seconds,
    )


async def presign_upload(
    context: ServiceContext,
    tenant_id: str,
    name: str | None,
    model: ModelRecord | None = None,
) -> tuple[UploadRecord, PresignedPost]:
    """Record a pending upload (and, for a model, its pending training image) and presign its POST."""
    upload_id = new_upload_id()
    settings = context.settings
    raw_key = upload_raw_key(tenant_id, upload_id)
    record = UploadRecord(
        uploadId=upload_id, tenantId=tenant_id, purpose=UploadPurpose.IMAGE, status=UploadStatus.PENDING, name=name
    )
    if model is not None:
        data_id = new_data_id()
        record = record.model_copy(
            update={"purpose": UploadPurpose.TRAINING_DATA, "modelId": model.modelId, "dataId": data_id}
        )
        await context.training_data.put(
            TrainingImageRecord(
                modelId=model.modelId,
                dataId=data_id,
                tenantId=tenant_id,
                uploadId=upload_id,
                # Every training image carries the key of its bytes: while pending, where the raw upload
                # lands (deleting the item deletes that); once validated, the normalized image's key.
                key=raw_key,
                name=name,
                status=UploadStatus.PENDING,
            )
        )
    upload = await context.uploads.create(record, settings.upload_expiry_seconds)
    post = await context.store.presign_post(
        raw_key, settings.max_presigned_upload_bytes, settings.presign_expiry_seconds
    )
    return upload, PresignedPost(url=post["url"], fields=post["fields"], maxBytes=settings.max_presigned_upload_bytes)


async def render_upload(context: ServiceContext, upload: UploadRecord, post: PresignedPost | None = None) -> UploadOut:
    """An upload as the API shows it, with a fresh presigned GET once it is ready."""
    url = None
    if upload.status is UploadStatus.READY and upload.key:
        url = await context.store.presign_get(upload.key, context.settings.presign_expiry_seconds)
    return UploadOut(
        key=upload.uploadId,
        uploadId=upload.uploadId,
        status=upload.status.value,
        purpose=upload.purpose.value,
        expiresAt=expires_at_iso(upload),
        url=url,
        width=upload.width,
        height=upload.height,
        format=upload.format,
        modelId=upload.modelId,
        dataId=upload.dataId,
        error=JobErrorOut(**upload.error.model_dump()) if upload.error else None,
        upload=post,
    )


async def read_upload_image(context: ServiceContext, tenant_id: str, key: str, field: str) -> NormalizedImage:
    """The image behind one of the caller's ready, unexpired upload keys; 422 naming `field` otherwise."""
    upload = await context.uploads.get_for_tenant(tenant_id, key)
    if upload is None or upload.purpose is not UploadPurpose.IMAGE:
        raise ApiError(422, "upload_not_found", f"upload key {key!r} does not exist or has expired", field=field)
    if upload.status is not UploadStatus.READY:
        raise ApiError(422, "upload_not_ready", f"upload key {key!r} is {upload.status.value}", field=field)
    data = await context.store.get_bytes(upload.key) if upload.key else None
    if data is None:
        raise ApiError(422, "upload_not_found", f"upload key {key!r} has expired", field=field)
    return await validate_image(context, data, field=field)
