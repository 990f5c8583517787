"""The one way a job comes to exist and to be started, whoever asks (the API for a user, the portrait flow
for a finished training, a worker adopting a direct producer's command, the reconciler): record it, publish
its command, fail it with one error shape, or publish its command again from the record."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, TypeVar

from events.envelope import CloudEvent, utcnow
from events.generation import GenerationRequested, GenerationRequestedData
from events.lifecycle import JobError
from events.persistence import Advance, AdvanceOutcome, PublishFailed, RecordExists, StaleWrite
from events.records.jobs import GenerationJob, TrainingJob
from events.states import GenerationStatus, JobKind, TrainingStatus
from events.topics import GENERATION_REQUESTS, TRAINING_REQUESTS
from events.training import TrainingRequested, TrainingRequestedData
from events.usecases.errors import Conflict, Unavailable
from events.usecases.lifecycle import publish_lifecycle_once
from events.usecases.ports import Backends

log = logging.getLogger(__name__)

# How long a caller waits for the broker before the job is failed and the caller told to retry.
PUBLISH_TIMEOUT_S = 10.0

# The jobs a command starts (portraits have none: the portrait flow moves them).
QueuedJob = GenerationJob | TrainingJob
QueuedJobT = TypeVar("QueuedJobT", GenerationJob, TrainingJob)

_FAILED = {JobKind.GENERATION: GenerationStatus.FAILED, JobKind.TRAINING: TrainingStatus.FAILED}
_QUEUED = {JobKind.GENERATION: GenerationStatus.QUEUED, JobKind.TRAINING: TrainingStatus.QUEUED}
_QUEUE_NAME = {JobKind.GENERATION: "job queue", JobKind.TRAINING: "training queue"}


def generation_record(
    tenant_id: str, data: GenerationRequestedData, extra: dict[str, Any] | None = None
) -> GenerationJob:
    """The record of a generation job that `data` describes (with `extra` stored fields)."""
    return GenerationJob(jobId=data.jobId, tenantId=tenant_id, modelId=data.modelId, request=data, **(extra or {}))


def training_record(tenant_id: str, data: TrainingRequestedData, extra: dict[str, Any] | None = None) -> TrainingJob:
    """The record of a training job that `data` describes (with `extra` stored fields)."""
    return TrainingJob(
        jobId=data.trainingId,
        tenantId=tenant_id,
        modelId=data.modelId,
        triggerWord=data.triggerWord,
        request=data,
        **(extra or {}),
    )


async def record_job(backends: Backends, record: QueuedJobT, *, existing_ok: bool = False) -> QueuedJobT:
    """Write a new job in its kind's initial status (the repository puts it in its kind's queue); returns
    the stored record.

    With `existing_ok`, a job id that already exists (a retried caller with a deterministic id, or a worker
    adopting a command twice) returns the stored record instead of raising `RecordExists`.
    """
    if not existing_ok:
        return await backends.jobs.create(record)
    with contextlib.suppress(RecordExists):
        return await backends.jobs.create(record)
    job = await backends.jobs.get_as(record.jobId, type(record))
    assert job is not None  # it existed a moment ago and jobs are never deleted
    return job


def command_for(job: QueuedJob, source: str, traceparent: str | None = None) -> tuple[str, CloudEvent[Any], str]:
    """The topic, event and message key that start `job` (a generation or a training), rebuilt from its
    record: the record is the source of truth, so whatever Kafka lost can be published again from it (in the
    trace the job was created in, unless `traceparent` names another)."""
    traceparent = traceparent or job.traceparent
    if isinstance(job, TrainingJob):
        event: CloudEvent[Any] = TrainingRequested(
            subject=job.jobId, tenantid=job.tenantId, traceparent=traceparent, source=source, data=job.request
        )
        # One model never trains twice at once: its trainings share a partition.
        return TRAINING_REQUESTS, event, job.request.modelId
    event = GenerationRequested(
        subject=job.jobId, tenantid=job.tenantId, traceparent=traceparent, source=source, data=job.request
    )
    return GENERATION_REQUESTS, event, job.jobId


async def fail_job(backends: Backends, job: QueuedJob, code: str, message: str) -> Advance[Any]:
    """Move the job to its kind's `failed` status with the one failure model, `JobError`."""
    error = JobError(code=code, message=message[:2000])
    return await backends.jobs.advance(job.jobId, _FAILED[job.kind], {"error": error})


async def publish_command(backends: Backends, job: QueuedJob, source: str, traceparent: str | None = None) -> None:
    """Publish the job's command, waiting at most PUBLISH_TIMEOUT_S for the broker.

    If the broker does not take it, the job is failed (`queue_unavailable`) so nothing stays queued forever,
    and `Unavailable` is raised for the caller to retry.
    """
    topic, event, key = command_for(job, source, traceparent)
    try:
        await asyncio.wait_for(backends.publisher.publish(topic, event, key=key), PUBLISH_TIMEOUT_S)
    except (PublishFailed, TimeoutError) as exc:
        log.error("could not publish job %s: %s", job.jobId, exc)
        message = f"the {_QUEUE_NAME[job.kind]} is unavailable; try again later"
        await fail_job(backends, job, "queue_unavailable", message)
        raise Unavailable("queue_unavailable", message, retry_after_s=5) from exc


async def queue_job(
    backends: Backends,
    record: QueuedJobT,
    *,
    source: str,
    traceparent: str | None = None,
    existing_ok: bool = False,
) -> QueuedJobT:
    """Record a queued job, then publish its command; returns the job record.

    The record is written first so a job on the topic always has one. With `existing_ok`, an existing job
    is published again: workers skip a job that is running or done, so at-least-once is safe. The job keeps
    `traceparent` (the request's trace): its command, its lifecycle events and its spans all join that trace.
    """
    if traceparent and record.traceparent is None:
        record = record.model_copy(update={"traceparent": traceparent})
    job = await record_job(backends, record, existing_ok=existing_ok)
    await publish_command(backends, job, source, traceparent)
    return job


async def queue_generation(
    backends: Backends,
    tenant_id: str,
    data: GenerationRequestedData,
    *,
    source: str,
    extra: dict[str, Any] | None = None,
    traceparent: str | None = None,
    republish_existing: bool = False,
) -> GenerationJob:
    """Queue the generation job `data` describes (see `queue_job`)."""
    record = generation_record(tenant_id, data, extra)
    return await queue_job(backends, record, source=source, traceparent=traceparent, existing_ok=republish_existing)


async def republish(backends: Backends, job: QueuedJob, source: str) -> None:
    """Publish `job`'s command again (workers skip a job that is done or held, so this is always safe);
    raises `PublishFailed` when the broker refuses, leaving the job as it is."""
    topic, event, key = command_for(job, source)
    await backends.publisher.publish(topic, event, key=key)


_CANCELED = {JobKind.GENERATION: GenerationStatus.CANCELED, JobKind.TRAINING: TrainingStatus.CANCELED}
_RUNNING = {JobKind.GENERATION: GenerationStatus.PROCESSING, JobKind.TRAINING: TrainingStatus.RUNNING}


async def cancel_while_queued(backends: Backends, job: QueuedJobT) -> tuple[QueuedJobT, bool]:
    """End a queued job as canceled, only while it is still queued: a worker may have claimed it since it was
    read, and a running job is stopped by its worker, never ended under it (its outputs could be half written).
    Returns (the job as it now stands, whether it was canceled here); the caller announces the cancel."""
    advance = await backends.jobs.advance(
        job.jobId,
        _CANCELED[job.kind],
        {"completedAt": utcnow().isoformat(), "canceledBy": "user"},
        only_from=_QUEUED[job.kind],
    )
    if advance.outcome is AdvanceOutcome.APPLIED:
        assert isinstance(advance.record, type(job))
        return advance.record, True
    return advance.record if isinstance(advance.record, type(job)) else job, False


async def ask_worker_to_stop(backends: Backends, job: QueuedJobT) -> tuple[QueuedJobT, bool]:
    """Set `cancelRequested` on a running job, only while it still runs: its worker notices, stops at the next
    step and writes `canceled.json`, which ends it. Returns (the job as it now stands, whether it was asked)."""
    running = _RUNNING[job.kind]
    try:
        updated = await backends.jobs.update_fields(
            job.jobId,
            {"cancelRequested": True, "cancelRequestedAt": utcnow().isoformat()},
            condition="#status = :running",
            values={":running": running.value},
        )
    except StaleWrite:
        return await backends.jobs.get_as(job.jobId, type(job)) or job, False
    assert isinstance(updated, type(job))
    return updated, True


async def cancel_generation(
    backends: Backends, job: GenerationJob, *, source: str, field: str = "jobId"
) -> GenerationJob:
    """Cancel a queued generation at once (no worker will claim it: a claim needs it queued), or ask the
    worker running it to stop between two denoising steps; `Conflict` naming `field` if it already ended.
    Returns the job as it now stands."""
    if job.portraitId:
        # A portrait's style is moved along by the portrait, which would end failed for a lost style.
        raise Conflict(
            "part_of_portrait",
            f"job {job.jobId!r} paints a style of portrait {job.portraitId!r} and is not canceled on its own",
            field=field,
        )
    if job.status is GenerationStatus.QUEUED:
        job, canceled = await cancel_while_queued(backends, job)
        if canceled:
            await publish_lifecycle_once(backends, job, GenerationStatus.CANCELED, source=source)
            return job
    if job.status is GenerationStatus.PROCESSING:
        job, asked = await ask_worker_to_stop(backends, job)
        if asked:
            return job
    raise Conflict(
        "job_finished",
        f"job {job.jobId!r} already {job.status.value}; there is nothing to cancel",
        field=field,
    )
