"""Trainings: start, read, list, cancel, soft delete. No FastAPI here."""

from __future__ import annotations

import logging
from typing import Any

from events.envelope import utcnow
from events.records.jobs import TrainingJob
from events.records.models import ModelRecord
from events.states import JobKind
from events.usecases import trainings as usecase
from events.usecases.quotas import require_job_slot
from functions.api.errors import ApiError
from functions.api.schemas.models import canonical_parameters
from infra.metrics import JOBS_CANCELED, JOBS_SUBMITTED
from infra.runtime import ServiceContext

log = logging.getLogger(__name__)


SOURCE = "/lorafoundry/api"


async def start_training(
    context: ServiceContext,
    tenant_id: str,
    model: ModelRecord,
    *,
    strength: int | None = None,
    speed: str | None = None,
    request_parameters: dict[str, Any] | None = None,
    traceparent: str | None = None,
    extra: dict[str, Any] | None = None,
    name: usecase.TrainingName | None = None,
) -> TrainingJob:
    """Queue a training of the model on its current images (`events.usecases.trainings.start_training`),
    with the model's stored parameters read in canonical form; returns the training record. `QuotaExceeded`
    when the tenant already has its limit of trainings queued or running."""
    await require_job_slot(context, tenant_id, JobKind.TRAINING)
    training = await usecase.start_training(
        context,
        tenant_id,
        model,
        source=SOURCE,
        model_parameters=canonical_parameters(model.parameters),
        strength=strength,
        speed=speed,
        request_parameters=request_parameters,
        traceparent=traceparent,
        extra=extra,
        name=name,
    )
    JOBS_SUBMITTED.labels(kind=JobKind.TRAINING.value).inc()
    return training


async def require_training(
    context: ServiceContext,
    tenant_id: str,
    model_id: str,
    training_id: str,
    field: str = "trainingId",
    *,
    include_deleted: bool = False,
) -> TrainingJob:
    """The caller's live training of that model, or 404 naming `field`. `include_deleted`: a soft-deleted one
    too, for what names its adapter (the custom-models API's soft delete "preserves the trained model")."""
    training = await context.jobs.get_for_tenant(tenant_id, training_id)
    if (
        not isinstance(training, TrainingJob)
        or training.modelId != model_id
        or (training.deletedAt and not include_deleted)
    ):
        raise ApiError(404, "training_not_found", f"model {model_id!r} has no training {training_id!r}", field=field)
    return training


async def cancel_training(context: ServiceContext, training: TrainingJob) -> TrainingJob:
    """Cancel a queued training at once, or ask the worker running it to stop at the next step."""
    canceled = await usecase.cancel_training(context, training, source=SOURCE)
    JOBS_CANCELED.labels(kind=JobKind.TRAINING.value).inc()
    return canceled


async def soft_delete_training(context: ServiceContext, training: TrainingJob) -> None:
    """Hide a training from lists (the custom-models API: it is not canceled, and its adapter keeps serving)."""
    await context.jobs.update_fields(training.jobId, {"deletedAt": utcnow().isoformat()})


async def list_trainings(context: ServiceContext, tenant_id: str, model_id: str) -> list[TrainingJob]:
    """The model's live trainings, newest first."""
    trainings = await context.jobs.list_for_model(model_id, JobKind.TRAINING)
    return [t for t in trainings if isinstance(t, TrainingJob) and t.tenantId == tenant_id and not t.deletedAt]
