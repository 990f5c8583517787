"""Custom-models training-data routes: one image per request as the raw body."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from events.records.training_data import TrainingImageRecord
from events.states import UploadStatus
from events.training import MAX_TRAINING_IMAGES
from events.usecases.quotas import require_image_room
from functions.api.dependencies import ContextDep, DataIdPath, ModelIdPath, TenantDep
from functions.api.dialects.custom_models import training_image_out
from functions.api.errors import ApiError
from functions.api.openapi import error_responses
from functions.api.schemas.common import ERROR_RESPONSES
from functions.api.schemas.trainings import (
    MAX_IMAGE_DESCRIPTION,
    DataAccepted,
    DataItemOut,
    DataItemWithData,
    DescribeDataRequest,
)
from functions.api.schemas.uploads import PresignedUploadRequest, UploadOut
from functions.api.services import training_data as service
from functions.api.services.models import require_model
from functions.api.services.uploads import presign_upload, render_upload
from infra.images import data_url

router = APIRouter(prefix="/v1/models/{modelId}/training-data", tags=["training data"], responses=ERROR_RESPONSES)


_RAW_IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            media: {"schema": {"type": "string", "format": "binary"}}
            for media in ("image/webp", "image/png", "image/jpeg", "application/octet-stream")
        },
    }
}


def _accepted(item: TrainingImageRecord) -> DataAccepted:
    """A stored (ready) image as the answer to its upload."""
    return DataAccepted(dataId=item.dataId, width=item.width, height=item.height, format=item.format)


@router.post(
    "",
    status_code=201,
    response_model=DataAccepted,
    openapi_extra=_RAW_IMAGE_BODY,
    responses=error_responses(409, 413, 415),
)
async def upload_training_image(
    modelId: ModelIdPath,
    request: Request,
    tenant: TenantDep,
    context: ContextDep,
    description: Annotated[
        str | None,
        Query(max_length=MAX_IMAGE_DESCRIPTION, description="The image's caption (the body is the image's bytes)."),
    ] = None,
) -> DataAccepted:
    """Upload one image (webp, png, jpeg; 10 MB max) as the raw body; the format is read from the bytes. Its
    caption, if it has one, comes as the `description` query parameter (or later, by PATCH)."""
    model = await require_model(context, tenant, modelId)
    item = await service.add_training_image(
        context, model, await request.body(), request.headers.get("x-file-name"), description=description
    )
    return _accepted(item)


@router.post("/presigned", status_code=201, response_model=UploadOut, response_model_exclude_none=True)
async def presign_training_image(
    modelId: ModelIdPath, tenant: TenantDep, context: ContextDep, body: PresignedUploadRequest | None = None
) -> UploadOut:
    """A URL to POST one big training image to directly (up to the presigned limit, 25 MB by default).

    The training image is listed as `pending` at once; when S3 announces the file it is validated and
    normalized, and becomes `ready`, or `rejected` with the reason.
    """
    model = await require_model(context, tenant, modelId)
    existing = await context.training_data.list(model.modelId)
    if len(existing) >= MAX_TRAINING_IMAGES:
        raise ApiError(409, "too_many_images", f"a model holds at most {MAX_TRAINING_IMAGES} training images")
    await require_image_room(context, tenant, model.modelId)
    upload, post = await presign_upload(context, tenant, body.name if body else None, model=model)
    return await render_upload(context, upload, post)


@router.get("", response_model=list[DataItemOut], response_model_exclude_none=True)
async def list_training_images(modelId: ModelIdPath, tenant: TenantDep, context: ContextDep) -> list[DataItemOut]:
    """Every training image of the model, oldest first."""
    model = await require_model(context, tenant, modelId)
    return [training_image_out(i) for i in await context.training_data.list(model.modelId)]


@router.get("/{dataId}", response_model=DataItemWithData, responses=error_responses(409))
async def get_training_image(
    modelId: ModelIdPath, dataId: DataIdPath, tenant: TenantDep, context: ContextDep
) -> DataItemWithData:
    """One training image, its (normalized) bytes as a `data:` URL."""
    model = await require_model(context, tenant, modelId)
    item = await service.require_item(context, model, dataId)
    if item.status is not UploadStatus.READY:
        raise ApiError(
            409, "data_not_ready", f"training image {dataId!r} is {item.status.value}; it has no bytes", field="dataId"
        )
    png = await context.store.get_bytes(item.key)
    if png is None:
        raise ApiError(404, "data_not_found", f"training image {dataId!r} has no stored bytes", field="dataId")
    return DataItemWithData(**training_image_out(item).model_dump(), dataUrl=data_url(png))


@router.patch("/{dataId}", response_model=DataItemOut, response_model_exclude_none=True)
async def describe_training_image(
    modelId: ModelIdPath, dataId: DataIdPath, body: DescribeDataRequest, tenant: TenantDep, context: ContextDep
) -> DataItemOut:
    """Set an image's caption (`description`; "" or null removes it): the next training trains the image on it,
    the model's trigger word woven in."""
    model = await require_model(context, tenant, modelId)
    item = await service.require_item(context, model, dataId)
    return training_image_out(await service.describe_training_image(context, model, item, body.description))


@router.put(
    "/{dataId}", response_model=DataAccepted, openapi_extra=_RAW_IMAGE_BODY, responses=error_responses(413, 415)
)
async def replace_training_image(
    modelId: ModelIdPath, dataId: DataIdPath, request: Request, tenant: TenantDep, context: ContextDep
) -> DataAccepted:
    """Replace an image's bytes (same rules as an upload); its id stays."""
    model = await require_model(context, tenant, modelId)
    item = await service.require_item(context, model, dataId)
    updated = await service.replace_training_image(context, model, item, await request.body())
    return _accepted(updated)


@router.delete("/{dataId}", status_code=204)
async def delete_training_image(
    modelId: ModelIdPath, dataId: DataIdPath, tenant: TenantDep, context: ContextDep
) -> Response:
    """Remove a training image for good."""
    model = await require_model(context, tenant, modelId)
    item = await service.require_item(context, model, dataId)
    await service.delete_training_image(context, model, item)
    return Response(status_code=204)
