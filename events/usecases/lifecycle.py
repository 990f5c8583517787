"""Publishing job lifecycle events exactly as far as Kafka allows: at least once, with a stable id."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from events.envelope import utcnow
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
from events.topics import JOB_LIFECYCLE
from events.usecases.ports import Backends, Record


def _event(job: Record, event_type: str, event_id: str, source: str, **data: Any) -> JobLifecycle:
    return JobLifecycle(
        id=event_id,
        type=event_type,  # type: ignore[arg-type]
        subject=job["jobId"],
        source=source,
        tenantid=job["tenantId"],
        data=JobLifecycleData(jobId=job["jobId"], kind=job.get("kind", "generation"), occurredAt=utcnow(), **data),
    )


def lifecycle_event(job: Record, status: StrEnum, source: str) -> JobLifecycle:
    """The lifecycle event announcing that `job` reached `status`."""
    return _event(
        job,
        EVENT_TYPE_FOR_STATUS[status.value],
        lifecycle_event_id(job["jobId"], status.value),
        source,
        status=status.value,
        outputs=job.get("outputs", []) if status.value in ("completed", "succeeded") else [],
        error=JobError(**job["error"]) if job.get("error") and status.value == "failed" else None,
    )


async def publish_lifecycle_once(backends: Backends, job: Record, status: StrEnum, source: str) -> None:
    """Publish the event for `status` unless the job records it as already sent.

    Called after the status write: if the send fails, a redelivery of whatever caused it finds the status
    already set and sends again (same event id, so consumers can drop the duplicate).
    """
    if status.value in (job.get("publishedEvents") or set()):
        return
    await backends.publisher.publish(JOB_LIFECYCLE, lifecycle_event(job, status, source))
    await backends.jobs.mark_published(job["jobId"], status.value)


async def publish_progress_event(
    backends: Backends,
    job: Record,
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
        lifecycle_event_id(job["jobId"], name, sequence),
        source,
        status=job["status"],
        progress=progress,
        epoch=epoch,
    )
    await backends.publisher.publish(JOB_LIFECYCLE, event)
