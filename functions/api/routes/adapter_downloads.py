"""Adapter downloads: `GET /v1/models/{modelId}/adapter` (what the model serves, or one epoch of it) and
`GET /v1/models/{modelId}/trainings/{trainingId}/adapter` (a training's final adapter or one of its epochs), each
`?format=diffusers|kohya&epoch=`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from events.storage_keys import AdapterFormat
from functions.api.dependencies import ContextDep, ModelIdPath, TenantDep, TrainingIdPath
from functions.api.openapi import error_responses
from functions.api.schemas.adapter_files import AdapterDownload
from functions.api.schemas.common import ERROR_RESPONSES
from functions.api.services import adapter_downloads as service
from functions.api.services.models import require_model

router = APIRouter(prefix="/v1/models/{modelId}", tags=["adapter downloads"], responses=ERROR_RESPONSES)

FormatQuery = Annotated[
    AdapterFormat,
    Query(description="`diffusers` (what the service serves) or `kohya` (AUTOMATIC1111, Forge, ComfyUI)."),
]
EpochQuery = Annotated[
    str | None,
    Query(pattern=r"^\d{1,6}$", description="An epoch (`2` or `000002`) instead of the final adapter."),
]


@router.get("/adapter", response_model=AdapterDownload, responses=error_responses(409))
async def download_model_adapter(
    modelId: ModelIdPath,
    tenant: TenantDep,
    context: ContextDep,
    format: FormatQuery = AdapterFormat.DIFFUSERS,
    epoch: EpochQuery = None,
) -> AdapterDownload:
    """A presigned URL to the adapter the model serves (its chosen epoch, else its final adapter; or the `epoch`
    asked for), as one `.safetensors` file in the `format` asked for. 409 while the model has no adapter, 404 for an
    epoch its training does not have."""
    model = await require_model(context, tenant, modelId)
    source = await service.model_source(context, model, service.normalize_epoch(epoch))
    return await service.download(context, source, format)


@router.get("/trainings/{trainingId}/adapter", response_model=AdapterDownload, responses=error_responses(409))
async def download_training_adapter(
    modelId: ModelIdPath,
    trainingId: TrainingIdPath,
    tenant: TenantDep,
    context: ContextDep,
    format: FormatQuery = AdapterFormat.DIFFUSERS,
    epoch: EpochQuery = None,
) -> AdapterDownload:
    """A presigned URL to the training's final adapter (409 until it succeeded) or to one of its finished epochs
    (404 for one it has not finished), as one `.safetensors` file in the `format` asked for."""
    model = await require_model(context, tenant, modelId)
    source = await service.training_source(context, tenant, model, trainingId, service.normalize_epoch(epoch))
    return await service.download(context, source, format)
