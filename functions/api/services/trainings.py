"""Trainings: start, read, list, cancel, soft delete. No FastAPI here."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from events.envelope import utcnow
from events.states import TrainingStatus
from events.usecases import trainings as usecase
from functions.api.errors import ApiError
from functions.api.schemas.models import canonical_parameters
from functions.api.schemas.trainings import TrainingEpochView, TrainingProgressView, TrainingView
from functions.api.services.models import queue_position
from functions.api.services.webhooks import job_deliveries
from infra.runtime import ServiceContext

log = logging.getLogger(__name__)


SOURCE = "/lorafoundry/api"


async def start_training(
    context: ServiceContext,
    tenant_id: str,
    model: dict[str, Any],
    *,
    strength: int | None = None,
    speed: str | None = None,
    request_parameters: dict[str, Any] | None = None,
    traceparent: str | None = None,
    extra: dict[str, Any] | None = None,
    name: usecase.TrainingName | None = None,
) -> dict[str, Any]:
    """Queue a training of the model on its current images (`events.usecases.trainings.start_training`),
    with the model's stored parameters read in canonical form; returns the training record."""
    return await usecase.start_training(
        context,
        tenant_id,
        model,
        source=SOURCE,
        model_parameters=canonical_parameters(model.get("parameters")),
        strength=strength,
        speed=speed,
        request_parameters=request_parameters,
        traceparent=traceparent,
        extra=extra,
        name=name,
    )


def estimated_completion(training: dict[str, Any]) -> str:
    """When the training should end if it started now (seed 000's `estimatedCompletion`)."""
    return (utcnow() + timedelta(seconds=float(training.get("estimatedSeconds", 0)))).isoformat()


async def require_training(
    context: ServiceContext,
    tenant_id: str,
    model_id: str,
    training_id: str,
    field: str = "trainingId",
    *,
    include_deleted: bool = False,
) -> dict[str, Any]:
    """The caller's live training of that model, or 404 naming `field`. `include_deleted`: a soft-deleted one
    too, for what names its adapter (seed 001: the soft delete "preserves the trained model")."""
    training = await context.trainings.get_for_tenant(tenant_id, training_id)
    if (
        training is None
        or training.get("kind") != "training"
        or training.get("modelId") != model_id
        or (training.get("deletedAt") and not include_deleted)
    ):
        raise ApiError(404, "training_not_found", f"model {model_id!r} has no training {training_id!r}", field=field)
    return training


# Seed 001 renders trainings as it renders predictions (and the use case words its refusals so too).
SEED001_STATUS = usecase.FINISHED_WORDS


async def render_training(context: ServiceContext, training: dict[str, Any]) -> TrainingView:
    """A training in seed 001's words, with progress and epochs."""
    status = TrainingStatus(training["status"])
    progress = None
    if training.get("progress") and status is TrainingStatus.RUNNING:
        p = training["progress"]
        progress = TrainingProgressView(
            stage=p["stage"],
            step=p["step"],
            totalSteps=p["totalSteps"],
            progress=round(p["step"] / p["totalSteps"], 4),
            epoch=p["epoch"],
            totalEpochs=p["totalEpochs"],
            loss=p.get("loss"),
            stepsPerSecond=p.get("stepsPerSecond"),
            remainingTimeMs=p.get("remainingTimeMs"),
            updatedAt=p["updatedAt"],
        )
    expiry = context.settings.presign_expiry_seconds
    epochs = []
    for name, info in sorted((training.get("epochs") or {}).items()):
        urls = await asyncio.gather(*(context.store.presign_get(k, expiry) for k in info.get("sampleKeys", [])))
        epochs.append(TrainingEpochView(epoch=name, step=info["step"], loss=info.get("loss"), sampleUrls=list(urls)))
    error = training.get("error")
    if status is TrainingStatus.CANCELED:
        error = {"code": "canceled", "message": "the training was canceled"}
    return TrainingView(
        id=training["jobId"],
        trainingId=training["jobId"],
        modelId=training["modelId"],
        status=SEED001_STATUS[status],  # type: ignore[arg-type]
        triggerWord=training["triggerWord"],
        createdAt=training["createdAt"],
        updatedAt=training["updatedAt"],
        startedAt=training.get("startedAt"),
        completedAt=training.get("completedAt"),
        cancelRequested=bool(training.get("cancelRequested")),
        queuePosition=await queue_position(context, training) if status is TrainingStatus.QUEUED else None,
        progress=progress,
        epochs=epochs,
        parameters=training["request"]["parameters"],
        error=error,
        webhook=training.get("webhook"),
        deliveries=await job_deliveries(context, training),
    )


async def cancel_training(context: ServiceContext, training: dict[str, Any]) -> dict[str, Any]:
    """Cancel a queued training at once, or ask the worker running it to stop at the next step."""
    return await usecase.cancel_training(context, training, source=SOURCE)


async def soft_delete_training(context: ServiceContext, training: dict[str, Any]) -> None:
    """Hide a training from lists (seed 001: it is not canceled, and its adapter keeps serving)."""
    await context.trainings.update_fields(training["jobId"], {"deletedAt": utcnow().isoformat()})


async def list_trainings(context: ServiceContext, tenant_id: str, model_id: str) -> list[dict[str, Any]]:
    """The model's live trainings, newest first."""
    trainings = await context.trainings.list_for_model(model_id, "training")
    return [t for t in trainings if t.get("tenantId") == tenant_id and not t.get("deletedAt")]
