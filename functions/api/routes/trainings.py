"""Custom-models training routes: start, list, status, cancel, soft delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Response

from functions.api.dependencies import ContextDep, ModelIdPath, TenantDep, TraceparentDep, TrainingIdPath
from functions.api.dialects.custom_models import render_training, training_status
from functions.api.schemas.common import ERROR_RESPONSES
from functions.api.schemas.trainings import StartTrainingRequest, TrainingAccepted, TrainingSummary, TrainingView
from functions.api.services import trainings as service
from functions.api.services.models import require_model
from functions.api.services.webhooks import webhook_record

router = APIRouter(prefix="/v1/models/{modelId}/trainings", tags=["trainings"], responses=ERROR_RESPONSES)


@router.post("", status_code=202, response_model=TrainingAccepted)
async def start_training(
    modelId: ModelIdPath,
    tenant: TenantDep,
    context: ContextDep,
    response: Response,
    traceparent: TraceparentDep,
    body: Annotated[StartTrainingRequest | None, Body()] = None,
) -> TrainingAccepted:
    """Train the model on its images: `trainingStrength`/`trainingSpeed` presets or Scenario-style `parameters`."""
    body = body or StartTrainingRequest()
    model = await require_model(context, tenant, modelId)
    training = await service.start_training(
        context,
        tenant,
        model,
        strength=body.trainingStrength,
        speed=body.trainingSpeed,
        request_parameters=body.parameters.applied() if body.parameters else None,
        traceparent=traceparent,
        extra=webhook_record(context, body),
    )
    response.headers["Location"] = f"/v1/models/{modelId}/trainings/{training.jobId}"
    return TrainingAccepted(
        trainingId=training.jobId,
        id=training.jobId,
        status=training_status(training),
        triggerWord=training.triggerWord,
    )


@router.get("", response_model=list[TrainingSummary])
async def list_trainings(modelId: ModelIdPath, tenant: TenantDep, context: ContextDep) -> list[TrainingSummary]:
    """The model's trainings, newest first (soft-deleted ones left out)."""
    await require_model(context, tenant, modelId)
    return [
        TrainingSummary(id=t.jobId, status=training_status(t), createdAt=t.createdAt)
        for t in await service.list_trainings(context, tenant, modelId)
    ]


@router.get("/{trainingId}", response_model=TrainingView, response_model_exclude_none=True)
async def get_training(
    modelId: ModelIdPath, trainingId: TrainingIdPath, tenant: TenantDep, context: ContextDep
) -> TrainingView:
    """A training's status, trigger word, progress and epochs."""
    await require_model(context, tenant, modelId)
    training = await service.require_training(context, tenant, modelId, trainingId)
    return await render_training(context, training)


@router.post("/{trainingId}/cancel", status_code=202, response_model=TrainingView, response_model_exclude_none=True)
async def cancel_training(
    modelId: ModelIdPath, trainingId: TrainingIdPath, tenant: TenantDep, context: ContextDep
) -> TrainingView:
    """Cancel: a queued training at once; a running one stops within a few steps (poll for `canceled`)."""
    await require_model(context, tenant, modelId)
    training = await service.require_training(context, tenant, modelId, trainingId)
    updated = await service.cancel_training(context, training)
    return await render_training(context, updated)


@router.delete("/{trainingId}", status_code=204)
async def delete_training(
    modelId: ModelIdPath, trainingId: TrainingIdPath, tenant: TenantDep, context: ContextDep
) -> Response:
    """Hide a training (the custom-models API's soft delete: it is not canceled, and its adapter keeps serving)."""
    await require_model(context, tenant, modelId)
    training = await service.require_training(context, tenant, modelId, trainingId)
    await service.soft_delete_training(context, training)
    return Response(status_code=204)
