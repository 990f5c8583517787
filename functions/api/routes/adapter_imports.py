"""Importing a LoRA file into a model: `PUT /v1/models/{modelId}/adapter` (the file as the raw body),
`POST /v1/models/{modelId}/adapter/presigned` (bigger files straight to S3) and
`GET /v1/models/{modelId}/adapter/uploads/{uploadId}` (where such an upload stands)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request

from functions.api.dependencies import ContextDep, ModelIdPath, TenantDep, UploadKeyPath
from functions.api.dialects.realm_style import render_model
from functions.api.openapi import error_responses
from functions.api.schemas.adapter_imports import AdapterUploadOut, AdapterUploadRequest
from functions.api.schemas.common import ERROR_RESPONSES
from functions.api.schemas.models import ModelOut
from functions.api.services import adapter_imports as service

router = APIRouter(prefix="/v1/models/{modelId}/adapter", tags=["adapter imports"], responses=ERROR_RESPONSES)

_RAW_ADAPTER_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}

FileNameHeader = Annotated[
    str | None, Header(alias="x-file-name", max_length=255, description="The file's name, kept on the import.")
]


@router.put(
    "",
    response_model=ModelOut,
    response_model_exclude_none=True,
    openapi_extra=_RAW_ADAPTER_BODY,
    responses=error_responses(409, 413),
)
async def import_adapter(
    modelId: ModelIdPath, request: Request, tenant: TenantDep, context: ContextDep, file_name: FileNameHeader = None
) -> ModelOut:
    """Import a LoRA `.safetensors` file (diffusers, peft or kohya naming; never a pickle) as the raw body
    (`LF_MAX_ADAPTER_BYTES`, 10 MB; behind API Gateway and Lambda a binary body travels base64 in a 6 MB payload,
    so about 4.4 MB arrive: bigger files go presigned). It must fit the model's base model: its family, its layers and
    their shapes, and the rank limit. The model then serves it as it serves a trained adapter (status trained),
    and a file imported before is deleted. A refused file is a 422 whose code names the problem, and changes
    nothing."""
    model = await service.import_raw_adapter(context, tenant, modelId, await request.body(), file_name)
    return await render_model(context, model)


@router.post(
    "/presigned",
    status_code=201,
    response_model=AdapterUploadOut,
    response_model_exclude_none=True,
    responses=error_responses(409),
)
async def presign_adapter(
    modelId: ModelIdPath, tenant: TenantDep, context: ContextDep, body: AdapterUploadRequest | None = None
) -> AdapterUploadOut:
    """A URL to POST a big LoRA file to directly (512 MB by default); poll the upload until it reads `ready`
    (the model serves it) or `rejected` (`error` names the problem)."""
    upload, post = await service.presign_adapter_upload(context, tenant, modelId, body.name if body else None)
    return await service.render_adapter_upload(context, upload, post)


@router.get("/uploads/{uploadId}", response_model=AdapterUploadOut, response_model_exclude_none=True)
async def get_adapter_upload(
    modelId: ModelIdPath, uploadId: UploadKeyPath, tenant: TenantDep, context: ContextDep
) -> AdapterUploadOut:
    """Where a presigned LoRA file upload stands."""
    upload = await service.require_adapter_upload(context, tenant, modelId, uploadId)
    return await service.render_adapter_upload(context, upload)
