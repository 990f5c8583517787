"""Model routes (Realm-style, custom-models and Scenario-style): create, list, get, update, rename, delete, train
in one call."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from events.states import JobKind
from events.usecases import trainings
from events.usecases.quotas import require_image_room, require_job_slot
from events.validation import error_message, error_path
from functions.api.dependencies import ContextDep, ModelIdPath, SignedDep, TenantDep, TraceparentDep
from functions.api.dialects import realm_style, scenario_style
from functions.api.dialects.realm_style import estimated_completion
from functions.api.errors import ApiError
from functions.api.openapi import error_responses
from functions.api.schemas.common import ERROR_RESPONSES, WebhookFields
from functions.api.schemas.models import (
    CreateModelRequest,
    ModelEnvelope,
    ModelList,
    ModelOut,
    RenameModelRequest,
    TrainAccepted,
    TrainingParametersIn,
    UpdateModelRequest,
    canonical_parameters,
)
from functions.api.services import models as service
from functions.api.services.training_data import is_caption_file, pair_captions, validate_image
from functions.api.services.trainings import SOURCE as TRAINING_SOURCE
from functions.api.services.webhooks import webhook_record

router = APIRouter(prefix="/v1/models", tags=["models"], responses=ERROR_RESPONSES)


@router.post("", status_code=201, response_model=ModelOut)
async def create_model(
    body: CreateModelRequest, tenant: TenantDep, context: ContextDep, response: Response
) -> ModelOut:
    """Create a model on a base model (Realm-style `name`, custom-models `displayName`); it starts
    `pending_training`."""
    model = await service.create_model(context, tenant, body)
    response.headers["Location"] = f"/v1/models/{model.modelId}"
    return realm_style.model_out(model, None, 0, context.base_models.get(model.baseModel))


@router.get("", response_model=ModelList)
async def list_models(
    tenant: TenantDep,
    context: ContextDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0, le=100_000)] = 0,
    status: Annotated[str | None, Query(max_length=32)] = None,
) -> ModelList:
    """The caller's models, newest first; `status` takes the Realm-style or the Scenario-style words."""
    if status is not None and status not in realm_style.STATUS_FILTERS:
        raise ApiError(
            422,
            "validation_error",
            f"status must be one of: {', '.join(realm_style.STATUS_FILTERS)}",
            field="status",
        )
    return await realm_style.list_models(context, tenant, limit, offset, status)


@router.get("/{modelId}", response_model=ModelOut)
async def get_model(modelId: ModelIdPath, tenant: TenantDep, context: ContextDep) -> ModelOut:
    """One model (the Realm-style and custom-models APIs)."""
    model = await service.require_model(context, tenant, modelId)
    return await realm_style.render_model(context, model)


@router.put("/{modelId}", response_model=ModelEnvelope, responses=error_responses(409))
async def update_model(
    modelId: ModelIdPath, body: UpdateModelRequest, tenant: TenantDep, context: ContextDep
) -> ModelEnvelope:
    """The Scenario-style API's update; returns `{"model": {...}}` with progress, stats, epochs and training images."""
    model = await service.require_model(context, tenant, modelId)
    updated = await service.update_model(context, tenant, model, body)
    return ModelEnvelope(model=await scenario_style.render_model_detail(context, updated))


@router.patch("/{modelId}", response_model=ModelOut)
async def rename_model(
    modelId: ModelIdPath, body: RenameModelRequest, tenant: TenantDep, context: ContextDep
) -> ModelOut:
    """The custom-models API's rename (`updatedDisplayName`)."""
    model = await service.require_model(context, tenant, modelId)
    updated = await service.rename_model(context, tenant, model, body)
    return await realm_style.render_model(context, updated)


@router.delete("/{modelId}", status_code=204, dependencies=[SignedDep], responses=error_responses(403))
async def delete_model(modelId: ModelIdPath, tenant: TenantDep, context: ContextDep) -> Response:
    """Delete a model for good (API key and request signature). Its history is kept, out of the user's sight."""
    model = await service.require_model(context, tenant, modelId)
    await service.soft_delete_model(context, model)
    return Response(status_code=204)


def _training_params(raw: str | None) -> dict:
    if raw is None or not raw.strip():
        return {}
    try:
        parsed = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ApiError(
            422, "validation_error", f"trainingParams is not valid JSON: {exc}", field="trainingParams"
        ) from exc
    if not isinstance(parsed, dict):
        raise ApiError(422, "validation_error", "trainingParams must be a JSON object", field="trainingParams")
    try:
        return TrainingParametersIn.model_validate(parsed).applied()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = error_path(first)
        field = f"trainingParams.{where}" if where else "trainingParams"
        message = error_message(first)
        raise ApiError(422, "validation_error", f"{field}: {message}", field=field) from exc


@router.post(
    "/{modelId}/train", status_code=202, response_model=TrainAccepted, responses=error_responses(409, 413, 415)
)
async def train_model(
    modelId: ModelIdPath,
    tenant: TenantDep,
    context: ContextDep,
    traceparent: TraceparentDep,
    images: Annotated[list[UploadFile] | None, File(alias="images[]", description="Training images.")] = None,
    images_plain: Annotated[list[UploadFile] | None, File(alias="images", description="Same, without []")] = None,
    trainingParams: Annotated[str | None, Form(max_length=20_000)] = None,
    webhook: Annotated[str | None, Form(max_length=2048)] = None,
    webhookEvents: Annotated[list[str] | None, Form()] = None,
) -> TrainAccepted:
    """The Realm-style API: store the uploaded images and start training in one call. A `.txt` file named like an
    image (`cat1.txt` beside `cat1.png`) is that image's caption."""
    parts = [*(images or []), *(images_plain or [])]
    parameters = _training_params(trainingParams)
    try:
        subscription = WebhookFields.model_validate({"webhook": webhook, "webhookEvents": webhookEvents})
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(), body=None) from None
    webhook_fields = webhook_record(context, subscription)
    model = await service.require_model(context, tenant, modelId)
    # A `.txt` part is the caption of the image part named like it (seed 000's images, kohya's sidecars).
    files = [(index, part) for index, part in enumerate(parts) if not is_caption_file(part.filename)]
    sidecars = [(index, part) for index, part in enumerate(parts) if is_caption_file(part.filename)]
    trainings.check_trainable_now(model, len(files))
    # The quotas before the files are read: a request over a limit costs nothing.
    await require_job_slot(context, tenant, JobKind.TRAINING)
    await require_image_room(context, tenant, model.modelId, len(files))
    # Validate every file before storing any, so a bad file leaves nothing half-written.
    sidecar_files = [(f"images[{index}]", part.filename or "", await part.read()) for index, part in sidecars]
    descriptions = pair_captions([part.filename for _, part in files], sidecar_files)
    validated = []
    for index, upload in files:
        data = await upload.read()
        validated.append((await validate_image(context, data, field=f"images[{index}]"), upload.filename))
    training, data_ids = await trainings.train_with_images(
        context,
        tenant,
        model,
        validated,
        descriptions=descriptions,
        source=TRAINING_SOURCE,
        model_parameters=canonical_parameters(model.parameters),
        request_parameters=parameters or None,
        traceparent=traceparent,
        extra=webhook_fields,
    )
    return TrainAccepted(
        modelId=modelId,
        trainingJobId=training.jobId,
        trainingId=training.jobId,
        estimatedCompletion=estimated_completion(training),
        dataIds=data_ids,
    )
