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


async def cancel_generation(
    backends: Backends, job: GenerationJob, *, source: str, field: str = "jobId"
) -> GenerationJob:
    """Cancel a queued generation at once (no worker will claim it: a claim needs it queued), or ask the
    worker running it to stop between two denoising steps (it then writes `canceled.json`, which ends it);
    `Conflict` naming `field` if it already ended. Returns the job as it now stands."""
    repository = backends.jobs
    job_id = job.jobId
    if job.status is GenerationStatus.QUEUED:
        # Only while still queued: a worker may have claimed it since it was read, and a running job is
        # stopped by its worker (below), never ended under it (its outputs could be half written).
        advance = await repository.advance(
            job_id,
            GenerationStatus.CANCELED,
            {"completedAt": utcnow().isoformat(), "canceledBy": "user"},
            only_from=GenerationStatus.QUEUED,
        )
        if advance.outcome is AdvanceOutcome.APPLIED:
            assert advance.record is not None
            await publish_lifecycle_once(backends, advance.record, GenerationStatus.CANCELED, source=source)
            return advance.record
        job = advance.record or job  # claimed meanwhile: ask its worker to stop
    if job.status is GenerationStatus.PROCESSING:
        try:
            updated = await repository.update_fields(
                job_id,
                {"cancelRequested": True, "cancelRequestedAt": utcnow().isoformat()},
                condition="#status = :processing",
                values={":processing": GenerationStatus.PROCESSING.value},
            )
        except StaleWrite:
            job = await repository.get_as(job_id, GenerationJob) or job
        else:
            assert isinstance(updated, GenerationJob)
            return updated
    raise Conflict(
        "job_finished",
        f"job {job_id!r} already {job.status.value}; there is nothing to cancel",
        field=field,
    )
