"""Trainings: start, read, list, cancel, soft delete. No FastAPI here."""

from __future__ import annotations

import logging
from typing import Any

from events.envelope import utcnow
from events.usecases import trainings as usecase
from functions.api.errors import ApiError
from functions.api.schemas.models import canonical_parameters
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
