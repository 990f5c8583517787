"""Trainings: start, read, list, cancel, soft delete. No FastAPI here."""

from __future__ import annotations

import asyncio
import logging
import secrets
import string
from typing import Any

from events.envelope import utcnow
from events.lifecycle import JobError
from events.persistence import PublishFailed
from events.states import ModelStatus, TrainingStatus
from events.topics import TRAINING_REQUESTS
from events.training import TrainingRequested, TrainingRequestedData
from functions.api.dialects.custom_models import TRAINING_STATUS
from functions.api.errors import ApiError
from functions.api.schemas.models import COMPOSITION_TYPES, canonical_parameters
from functions.api.services.models import resolve_base_model
from functions.api.services.training_params import (
    BaseDefaults,
    ParameterError,
    estimated_seconds,
    resolve_parameters,
)
from infra.generation_queue import PUBLISH_TIMEOUT_S
from infra.lifecycle import publish_lifecycle_once
from infra.model_outcome import settle_model
from infra.repositories.jobs import JOB_QUEUE_TRAINING
from infra.repositories.versioned import AdvanceOutcome, StaleWrite
from infra.runtime import ServiceContext

log = logging.getLogger(__name__)

# MERGE: only cancel_training uses this name (a finished training's status in the custom-models API's words,
# in its 409 message); it keeps that function untouched while it moves to events/usecases. Drop it then.
SEED001_STATUS = TRAINING_STATUS


TRIGGER_ALPHABET = string.ascii_uppercase + string.digits


def new_training_id() -> str:
    """A fresh, unguessable training id."""
    return f"trn_{secrets.token_hex(10)}"


def new_trigger_word() -> str:
    """A rare token that names the model in prompts (the custom-models API's `FJA90AB` shape)."""
    return "".join(secrets.choice(TRIGGER_ALPHABET) for _ in range(7))


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
) -> dict[str, Any]:
    """Queue a training of the model on its current images; returns the training record (with `extra`
    fields, written with it so nothing reacting to the training can see it without them).

    The model moves to `training` first, by a conditional write: of two concurrent requests one wins and
    the other gets 409. If the broker cannot take the command, training and model are failed and the
    caller gets 503, so nothing waits forever.
    """
    model_id = model["modelId"]
    if model["type"] in COMPOSITION_TYPES:
        raise ApiError(422, "not_trainable", "a composition model combines trained models and is not trained itself")
    spec = resolve_base_model(context, model["baseModel"])
    all_items = await context.training_data.list(model_id)
    pending = [i["dataId"] for i in all_items if i.get("status") == "pending"]
    if pending:
        raise ApiError(
            409,
            "training_data_pending",
            f"{len(pending)} training image(s) are still being processed ({', '.join(pending[:5])}); "
            "start the training once they read ready or rejected",
            field="modelId",
        )
    items = [i for i in all_items if i.get("status", "ready") == "ready"]
    if not items:
        raise ApiError(
            409, "no_training_data", f"model {model_id!r} has no training images; upload some first", field="modelId"
        )
    trigger_word = model.get("triggerWord") or new_trigger_word()
    try:
        parameters = resolve_parameters(
            image_count=len(items),
            trigger_word=trigger_word,
            base=BaseDefaults(resolution=spec.default_size, sample_steps=spec.default_steps),
            strength=strength,
            speed=speed,
            model_parameters=canonical_parameters(model.get("parameters")),
            request_parameters=request_parameters,
        )
    except ParameterError as exc:
        raise ApiError(422, "validation_error", str(exc), field=exc.field or "parameters") from exc
    if request_parameters and request_parameters.get("conceptPrompt"):
        trigger_word = request_parameters["conceptPrompt"]
    elif (model.get("parameters") or {}).get("conceptPrompt"):
        trigger_word = model["parameters"]["conceptPrompt"]

    training_id = new_training_id()
    advance = await context.models.advance(
        model_id, ModelStatus.TRAINING, {"trainingId": training_id, "triggerWord": trigger_word}
    )
    if advance.outcome is not AdvanceOutcome.APPLIED:
        current = (advance.record or {}).get("trainingId")
        raise ApiError(409, "model_training", f"model {model_id!r} is already training (training {current})")
    data = TrainingRequestedData(
        trainingId=training_id,
        modelId=model_id,
        baseModel=spec.name,
        triggerWord=trigger_word,
        dataKeys=[i["key"] for i in items],
        parameters=parameters,
    )
    training = await context.trainings.create(
        {
            "jobId": training_id,
            "tenantId": tenant_id,
            "kind": "training",
            "modelId": model_id,
            "queue": JOB_QUEUE_TRAINING,
            "triggerWord": trigger_word,
            "dataIds": [i["dataId"] for i in items],
            "request": data.model_dump(mode="json"),
            "epochs": {},
            "estimatedSeconds": round(estimated_seconds(parameters, spec.train_steps_per_second), 1),
            **(extra or {}),
        }
    )
    event = TrainingRequested(
        subject=training_id, tenantid=tenant_id, traceparent=traceparent, source="/lorafoundry/api", data=data
    )
    try:
        await asyncio.wait_for(context.publisher.publish(TRAINING_REQUESTS, event, key=model_id), PUBLISH_TIMEOUT_S)
    except (PublishFailed, TimeoutError) as exc:
        log.error("could not publish training %s: %s", training_id, exc)
        error = JobError(code="queue_unavailable", message="the training queue is unavailable; try again later")
        await context.trainings.advance(training_id, TrainingStatus.FAILED, {"error": error.model_dump()})
        await context.models.advance(model_id, ModelStatus.FAILED)
        raise ApiError(503, "queue_unavailable", error.message, headers={"Retry-After": "5"}) from exc
    return training


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
    too, for what names its adapter (the custom-models API: the soft delete "preserves the trained model")."""
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
    status = TrainingStatus(training["status"])
    training_id = training["jobId"]
    if status is TrainingStatus.QUEUED:
        advance = await context.trainings.advance(
            training_id, TrainingStatus.CANCELED, {"completedAt": utcnow().isoformat(), "canceledBy": "user"}
        )
        if advance.outcome is AdvanceOutcome.APPLIED:
            assert advance.record is not None
            await settle_model(context, advance.record, TrainingStatus.CANCELED)
            await publish_lifecycle_once(context, advance.record, TrainingStatus.CANCELED, source="/lorafoundry/api")
            return advance.record
        training = advance.record or training  # a worker claimed it meanwhile: ask it to stop
        status = TrainingStatus(training["status"])
    if status is TrainingStatus.RUNNING:
        try:
            return await context.trainings.update_fields(
                training_id,
                {"cancelRequested": True, "cancelRequestedAt": utcnow().isoformat()},
                condition="#status = :running",
                values={":running": TrainingStatus.RUNNING.value},
            )
        except StaleWrite:
            training = await context.trainings.get(training_id) or training
            status = TrainingStatus(training["status"])
    raise ApiError(
        409,
        "training_finished",
        f"training {training_id!r} already {SEED001_STATUS[status]}; there is nothing to cancel",
        field="trainingId",
    )


async def soft_delete_training(context: ServiceContext, training: dict[str, Any]) -> None:
    """Hide a training from lists (the custom-models API: it is not canceled, and its adapter keeps serving)."""
    await context.trainings.update_fields(training["jobId"], {"deletedAt": utcnow().isoformat()})


async def list_trainings(context: ServiceContext, tenant_id: str, model_id: str) -> list[dict[str, Any]]:
    """The model's live trainings, newest first."""
    trainings = await context.trainings.list_for_model(model_id, "training")
    return [t for t in trainings if t.get("tenantId") == tenant_id and not t.get("deletedAt")]
