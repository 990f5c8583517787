"""Turning one marker into a conditional status update (and a lifecycle event), or a progress record."""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

from events.lifecycle import JobProgress
from events.markers import GenerationResult, JobCanceled, JobFailure
from events.persistence import AdvanceOutcome, PublishFailed
from events.records.jobs import EpochRecord, TrainingJob
from events.states import TRAINING, GenerationStatus, JobKind, TrainingStatus
from events.storage_keys import JobMarkerRef, Marker
from events.training import EpochCheckpoint, TrainingCanceled, TrainingFailure, TrainingProgress, TrainingResult
from events.usecases.lifecycle import publish_lifecycle_once, publish_progress_event
from events.usecases.ports import AnyJob
from events.usecases.trainings import settle_model
from infra.runtime import ServiceContext

log = logging.getLogger(__name__)


class MarkerError(ValueError):
    """A marker whose body is missing or does not match its contract."""


_GENERATION_TARGETS: dict[Marker, GenerationStatus] = {
    Marker.RESULT: GenerationStatus.COMPLETED,
    Marker.FAILED: GenerationStatus.FAILED,
    Marker.CANCELED: GenerationStatus.CANCELED,
}
_TRAINING_TARGETS: dict[Marker, TrainingStatus] = {
    Marker.RESULT: TrainingStatus.SUCCEEDED,
    Marker.FAILED: TrainingStatus.FAILED,
    Marker.CANCELED: TrainingStatus.CANCELED,
}


async def _read(context: ServiceContext, key: str) -> Any:
    body = await context.store.get_json(key)
    if body is None:
        raise MarkerError(f"marker {key} does not exist")
    return body


def _generation_fields(marker: Marker, body: Any) -> dict[str, Any]:
    if marker is Marker.RESULT:
        result = GenerationResult.model_validate(body)
        return {
            "outputs": result.outputs,
            "completedAt": result.completedAt.isoformat(),
            "result": result.model_dump(mode="json", exclude={"outputs", "jobId"}),
        }
    if marker is Marker.FAILED:
        failure = JobFailure.model_validate(body)
        return {"error": failure.error, "completedAt": failure.failedAt.isoformat()}
    canceled = JobCanceled.model_validate(body)
    return {"completedAt": canceled.canceledAt.isoformat(), "canceledAtStep": canceled.step}


def _training_fields(marker: Marker, body: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fields for the training record and for its model."""
    if marker is Marker.RESULT:
        result = TrainingResult.model_validate(body)
        completed = result.completedAt.isoformat()
        job_fields = {
            "outputs": [result.adapterKey],
            "adapterKey": result.adapterKey,
            "completedAt": completed,
            "result": result.model_dump(mode="json", exclude={"trainingId", "modelId"}),
        }
        model_fields = {
            "adapterKey": result.adapterKey,
            "adapterTrainingId": result.trainingId,
            "lastTrainedAt": completed,
            "triggerWord": result.triggerWord,
        }
        return job_fields, model_fields
    if marker is Marker.FAILED:
        failure = TrainingFailure.model_validate(body)
        return {"error": failure.error, "completedAt": failure.failedAt.isoformat()}, {}
    canceled = TrainingCanceled.model_validate(body)
    return {"completedAt": canceled.canceledAt.isoformat(), "canceledAtStep": canceled.step}, {}


async def _advance_and_announce(
    context: ServiceContext, key: str, job_id: str, target: StrEnum, fields: dict[str, Any]
) -> tuple[AdvanceOutcome, AnyJob | None]:
    advance = await context.jobs.advance(job_id, target, fields)
    job = advance.job
    if advance.outcome in (AdvanceOutcome.MISSING, AdvanceOutcome.REJECTED):
        log.info("marker %s ignored: %s (job is %s)", key, advance.outcome, job.status if job else "missing")
        return advance.outcome, job
    assert job is not None
    log.info("job %s is %s (%s)", job_id, target, advance.outcome)
    await publish_lifecycle_once(context, job, target, source="/lorafoundry/s3-events")
    return advance.outcome, job


async def _announce_progress(
    context: ServiceContext, job_id: str, *, progress: JobProgress | None = None, epoch: str | None = None
) -> None:
    job = await context.jobs.get_as(job_id, TrainingJob)
    if job is None or job.status is not TrainingStatus.RUNNING:
        return  # progress of a job that already ended (a late notification) is news to nobody
    try:
        await publish_progress_event(context, job, "/lorafoundry/s3-events", progress=progress, epoch=epoch)
    except PublishFailed:
        # Progress is superseded by the next report; a status change would be retried, this is not.
        log.warning("could not announce progress of %s", job_id, exc_info=True)


async def _apply_training_marker(context: ServiceContext, key: str, ref: JobMarkerRef) -> StrEnum | None:
    body = await _read(context, key)
    if ref.epoch is not None:
        checkpoint = EpochCheckpoint.model_validate(body)
        info = EpochRecord(**checkpoint.model_dump(mode="json", exclude={"trainingId", "epoch"}))
        recorded = await context.jobs.record_epoch(ref.job_id, checkpoint.epoch, info)
        if recorded:
            await _announce_progress(context, ref.job_id, epoch=checkpoint.epoch)
        return AdvanceOutcome.APPLIED if recorded else AdvanceOutcome.MISSING
    assert ref.marker is not None
    if ref.marker is Marker.PROGRESS:
        progress = TrainingProgress.model_validate(body)
        newer = await context.jobs.record_progress(ref.job_id, progress)
        if newer:
            step = JobProgress(step=progress.step, totalSteps=progress.totalSteps, loss=progress.loss)
            await _announce_progress(context, ref.job_id, progress=step)
        return AdvanceOutcome.APPLIED if newer else AdvanceOutcome.REJECTED
    target = _TRAINING_TARGETS[ref.marker]
    job_fields, model_fields = _training_fields(ref.marker, body)
    job = await context.jobs.get_as(ref.job_id, TrainingJob)
    if job is None:
        return AdvanceOutcome.MISSING
    current = job.status
    if current == target or TRAINING.can_transition(current, target):
        # The model first: whoever sees the training finished must find the model settled too. A crash
        # between the two writes is healed by the redelivery (both moves are idempotent).
        await settle_model(context, job, target, model_fields or None)
    outcome, _ = await _advance_and_announce(context, key, ref.job_id, target, job_fields)
    return outcome


async def apply_marker(context: ServiceContext, key: str, ref: JobMarkerRef) -> StrEnum | None:
    """Apply one marker; returns the outcome, or None for markers that carry no status."""
    if ref.kind is JobKind.TRAINING:
        return await _apply_training_marker(context, key, ref)
    if ref.marker not in _GENERATION_TARGETS:
        return None  # progress.json of generation jobs carries nothing the API shows yet.
    target = _GENERATION_TARGETS[ref.marker]
    fields = _generation_fields(ref.marker, await _read(context, key))
    outcome, _ = await _advance_and_announce(context, key, ref.job_id, target, fields)
    return outcome
