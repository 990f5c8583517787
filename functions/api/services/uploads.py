"""Uploads: direct (validated in the request) or presigned (validated when S3 announces the bytes)."""

from __future__ import annotations

import secrets
from typing import Any

from events.storage_keys import upload_image_key, upload_raw_key
from functions.api.errors import ApiError
from functions.api.schemas.images import JobErrorOut
from functions.api.schemas.uploads import PresignedPost, UploadOut
from functions.api.services.training_data import new_data_id, validate_image
from infra.images import NormalizedImage
from infra.repositories.uploads import UploadPurpose, UploadStatus, expires_at_iso
from infra.runtime import ServiceContext

UPLOAD_KEY_PREFIX = "upl_"


def new_upload_id() -> str:
    """A fresh, unguessable upload id (the headshot API's `key`)."""
    return f"{UPLOAD_KEY_PREFIX}{secrets.token_hex(12)}"


async def upload_image(context: ServiceContext, tenant_id: str, data: bytes, name: str | None) -> dict[str, Any]:
    """Validate and keep one image under a fresh key that expires (the headshot API's upload endpoint)."""
    image = await validate_image(context, data, field="file")
    upload_id = new_upload_id()
    key = upload_image_key(tenant_id, upload_id)
    await context.store.put_bytes(key, image.png, "image/png")
    return await context.uploads.create(
        {
            "uploadId": upload_id,
            "tenantId": tenant_id,
            "purpose": UploadPurpose.IMAGE.value,
            "status": UploadStatus.READY.value,
            "key": key,
            "name": name,
            "width": image.width,
            "height": image.height,
            "format": image.source_format,
            "bytes": image.source_bytes,
            "sha256": image.sha256,
        },
        context.settings.upload_expiry_seconds,
    )


async def presign_upload(
    context: ServiceContext,
    tenant_id: str,
    name: str | None,
    model: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], PresignedPost]:
    """Record a pending upload (and, for a model, its pending training image) and presign its POST."""
    upload_id = new_upload_id()
    settings = context.settings
    raw_key = upload_raw_key(tenant_id, upload_id)
    record: dict[str, Any] = {
        "uploadId": upload_id,
        "tenantId": tenant_id,
        "purpose": UploadPurpose.IMAGE.value,
        "status": UploadStatus.PENDING.value,
        "name": name,
    }
    if model is not None:
        data_id = new_data_id()
        record |= {"purpose": UploadPurpose.TRAINING_DATA.value, "modelId": model["modelId"], "dataId": data_id}
        await context.training_data.put(
            {
                "modelId": model["modelId"],
                "dataId": data_id,
                "tenantId": tenant_id,
                "uploadId": upload_id,
                # Every training image carries the key of its bytes: while pending, where the raw upload
                # lands (deleting the item deletes that); once validated, the normalized image's key.
                "key": raw_key,
                "name": name,
                "status": UploadStatus.PENDING.value,
            }
        )
    upload = await context.uploads.create(record, settings.upload_expiry_seconds)
    post = await context.store.presign_post(
        raw_key, settings.max_presigned_upload_bytes, settings.presign_expiry_seconds
    )
    return upload, PresignedPost(url=post["url"], fields=post["fields"], maxBytes=settings.max_presigned_upload_bytes)


async def render_upload(
    context: ServiceContext, upload: dict[str, Any], post: PresignedPost | None = None
) -> UploadOut:
    """An upload as the API shows it, with a fresh presigned GET once it is ready."""
    url = None
    if upload["status"] == UploadStatus.READY.value and upload.get("key"):
        url = await context.store.presign_get(upload["key"], context.settings.presign_expiry_seconds)
    return UploadOut(
        key=upload["uploadId"],
        uploadId=upload["uploadId"],
        status=upload["status"],
        purpose=upload["purpose"],
        expiresAt=expires_at_iso(upload),
        url=url,
        width=upload.get("width"),
        height=upload.get("height"),
        format=upload.get("format"),
        modelId=upload.get("modelId"),
        dataId=upload.get("dataId"),
        error=JobErrorOut(**upload["error"]) if upload.get("error") else None,
        upload=post,
    )


async def read_upload_image(context: ServiceContext, tenant_id: str, key: str, field: str) -> NormalizedImage:
    """The image behind one of the caller's ready, unexpired upload keys; 422 naming `field` otherwise."""
    upload = await context.uploads.get_for_tenant(tenant_id, key)
    if upload is None or upload["purpose"] != UploadPurpose.IMAGE.value:
        raise ApiError(422, "upload_not_found", f"upload key {key!r} does not exist or has expired", field=field)
    if upload["status"] != UploadStatus.READY.value:
        raise ApiError(422, "upload_not_ready", f"upload key {key!r} is {upload['status']}", field=field)
    data = await context.store.get_bytes(upload["key"])
    if data is None:
        raise ApiError(422, "upload_not_found", f"upload key {key!r} has expired", field=field)
    return await validate_image(context, data, field=field)
