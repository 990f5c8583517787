"""Adapter imports through the API: a LoRA file as a request's raw body, or a presigned upload the notification
handler imports (`functions/s3_events/adapter_uploads.py`) once S3 announces it."""

from __future__ import annotations

from events.records.models import ModelRecord
from events.records.uploads import UploadPurpose, UploadRecord
from events.states import UploadStatus
from events.storage_keys import upload_adapter_key
from events.usecases.adapter_imports import AdapterFile, import_adapter, import_id_for_upload, importable_model
from functions.adapter_files import LoraFiles
from functions.api.dialects.realm_style import render_model
from functions.api.errors import ApiError
from functions.api.schemas.adapter_imports import AdapterUploadOut
from functions.api.schemas.images import JobErrorOut
from functions.api.schemas.uploads import PresignedPost
from functions.api.services.uploads import new_upload_id
from infra.repositories.uploads import expires_at_iso
from infra.runtime import ServiceContext


async def import_raw_adapter(
    context: ServiceContext, tenant_id: str, model_id: str, data: bytes, name: str | None
) -> ModelRecord:
    """Import one LoRA file sent as the request body: 413 over the raw-body limit (bigger files go presigned),
    else the use case's answer (the model serving it, or a 4xx naming the problem)."""
    limit = context.settings.max_adapter_bytes
    if len(data) > limit:
        raise ApiError(
            413,
            "payload_too_large",
            f"the file has {len(data)} bytes; a request body takes {limit} at most: "
            "send bigger files through POST /v1/models/{modelId}/adapter/presigned",
            field="file",
        )
    if not data:
        raise ApiError(
            422, "adapter_not_safetensors", "the request body is empty: send the .safetensors file", field="file"
        )
    return await import_adapter(context, LoraFiles(context.settings), tenant_id, model_id, AdapterFile(data, name))


async def presign_adapter_upload(
    context: ServiceContext, tenant_id: str, model_id: str, name: str | None
) -> tuple[UploadRecord, PresignedPost]:
    """Record a pending upload of a LoRA file for the model (refused as an import would be, before any bytes)
    and presign its POST, up to the presigned adapter limit."""
    await importable_model(context, tenant_id, model_id)
    settings = context.settings
    upload = await context.uploads.create(
        UploadRecord(
            uploadId=new_upload_id(),
            tenantId=tenant_id,
            purpose=UploadPurpose.ADAPTER,
            status=UploadStatus.PENDING,
            name=name,
            modelId=model_id,
        ),
        settings.upload_expiry_seconds,
    )
    post = await context.store.presign_post(
        upload_adapter_key(tenant_id, upload.uploadId),
        settings.max_adapter_upload_bytes,
        settings.presign_expiry_seconds,
    )
    return upload, PresignedPost(url=post["url"], fields=post["fields"], maxBytes=settings.max_adapter_upload_bytes)


async def require_adapter_upload(
    context: ServiceContext, tenant_id: str, model_id: str, upload_id: str
) -> UploadRecord:
    """The caller's live adapter upload for the model, or 404."""
    upload = await context.uploads.get_for_tenant(tenant_id, upload_id)
    if upload is None or upload.modelId != model_id or upload.dataId is not None:
        raise ApiError(
            404, "upload_not_found", f"upload {upload_id!r} of model {model_id!r} does not exist or has expired"
        )
    return upload


async def render_adapter_upload(
    context: ServiceContext, upload: UploadRecord, post: PresignedPost | None = None
) -> AdapterUploadOut:
    """An adapter upload as the API shows it, with the model once it serves the file."""
    assert upload.modelId is not None  # set on every adapter upload
    model_out = None
    import_id = None
    if upload.status is UploadStatus.READY:
        model = await context.models.get_live(upload.tenantId, upload.modelId)
        model_out = await render_model(context, model) if model is not None else None
        import_id = import_id_for_upload(upload.uploadId)
    return AdapterUploadOut(
        uploadId=upload.uploadId,
        modelId=upload.modelId,
        status=upload.status.value,
        expiresAt=expires_at_iso(upload),
        importId=import_id,
        error=JobErrorOut(**upload.error.model_dump()) if upload.error else None,
        upload=post,
        model=model_out,
    )
