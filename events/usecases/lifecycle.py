"""Publishing job lifecycle events exactly as far as Kafka allows: at least once, with a stable id."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from events.envelope import is_valid_traceparent, utcnow
from events.lifecycle import (
    EVENT_TYPE_FOR_STATUS,
    JOB_CHECKPOINT,
    JOB_PROGRESS,
    JobError,
    JobLifecycle,
    JobLifecycleData,
    JobProgress,
    lifecycle_event_id,
)
from events.states import GenerationStatus, PortraitStatus, TrainingStatus
from events.topics import JOB_LIFECYCLE
from events.usecases.ports import AnyJob, Backends

# The statuses whose event carries the job's outputs, and those that carry its error.
_SUCCEEDED = frozenset({GenerationStatus.COMPLETED, TrainingStatus.SUCCEEDED, PortraitStatus.COMPLETED})
_FAILED = frozenset({GenerationStatus.FAILED, TrainingStatus.FAILED, PortraitStatus.FAILED})


def _event(job: AnyJob, event_type: str, event_id: str, source: str, **data: Any) -> JobLifecycle:
    return JobLifecycle(
        id=event_id,
        type=event_type,  # type: ignore[arg-type]
        subject=job.jobId,
        source=source,
        tenantid=job.tenantId,
        # The job's trace: whoever acts on the event (webhooks, portraits) joins the trace its request started.
        traceparent=job.traceparent if is_valid_traceparent(job.traceparent) else None,
        data=JobLifecycleData(jobId=job.jobId, kind=job.kind, occurredAt=utcnow(), **data),
    )


def lifecycle_event(job: AnyJob, status: StrEnum, source: str) -> JobLifecycle:
    """The lifecycle event announcing that `job` reached `status`."""
    error: JobError | None = job.error if status in _FAILED else None
    return _event(
        job,
        EVENT_TYPE_FOR_STATUS[status.value],
        lifecycle_event_id(job.jobId, status.value),
        source,
        status=status.value,
        outputs=(job.outputs or []) if status in _SUCCEEDED else [],
        error=error,
    )


async def publish_lifecycle_once(backends: Backends, job: AnyJob, status: StrEnum, source: str) -> None:
    """Publish the event for `status` unless the job records it as already sent.

    Called after the status write: if the send fails, a redelivery of whatever caused it finds the status
    already set and sends again (same event id, so consumers can drop the duplicate).
    """
    if status.value in (job.publishedEvents or set()):
        return
    await backends.publisher.publish(JOB_LIFECYCLE, lifecycle_event(job, status, source))
    await backends.jobs.mark_published(job.jobId, status)


async def publish_progress_event(
    backends: Backends,
    job: AnyJob,
    source: str,
    *,
    progress: JobProgress | None = None,
    epoch: str | None = None,
) -> None:
    """Announce a running job's progress (`progress`) or a checkpoint written (`epoch`): not status changes,
    so nothing is recorded; a lost one is superseded by the next."""
    if epoch is not None:
        event_type, name, sequence = JOB_CHECKPOINT, "checkpoint", epoch
    else:
        assert progress is not None
        event_type, name, sequence = JOB_PROGRESS, "progress", str(progress.step)
    event = _event(
        job,
        event_type,
        lifecycle_event_id(job.jobId, name, sequence),
        source,
        status=job.status.value,
        progress=progress,
        epoch=epoch,
    )
    await backends.publisher.publish(JOB_LIFECYCLE, event)
