"""What the reconciler does on each run. It is what makes a lost Kafka message (or a lost worker) harmless:

- a job still `queued` after `reconcile_queued_after_seconds` has its command published again (at most once
  per that period): if the broker lost it, the job now runs; if not, the worker skips the duplicate;
- a job whose worker's lease lapsed (the worker died, or lost the broker) has its command published again, so
  another worker claims it (claims take over lapsed leases; trainings resume from their last checkpoint): once
  for each claim that lapsed, then at most once per the same period (a command already on its way needs no
  twin on every pass); after
  `reconcile_max_attempts` attempts it is failed instead, by writing its `failed.json` marker, so the
  notification path (status, model, lifecycle event, webhooks) handles it like any other failure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from events.lifecycle import JobError
from events.markers import JobFailure
from events.persistence import PublishFailed
from events.records.jobs import GenerationJob, PortraitJob, TrainingJob
from events.storage_keys import Marker, job_marker_key, training_marker_key
from events.training import TrainingFailure
from events.usecases import jobs
from infra.repositories.jobs import QUEUED_KINDS
from infra.runtime import ServiceContext

log = logging.getLogger(__name__)

SOURCE = "/lorafoundry/reconciler"
WORKER_ID = "reconciler"


@dataclass
class Report:
    """What one run did, by job id."""

    republished: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


QueuedJob = GenerationJob | TrainingJob


async def _fail(context: ServiceContext, job: QueuedJob, now: datetime) -> None:
    error = JobError(
        code="worker_lost",
        message=f"the job's worker stopped answering {job.attempts or 0} times; it was given up",
    )
    attempt = max(1, job.attempts if job.attempts is not None else 1)
    if isinstance(job, TrainingJob):
        failure = TrainingFailure(trainingId=job.jobId, error=error, workerId=WORKER_ID, attempt=attempt, failedAt=now)
        await context.store.put_model(training_marker_key(job.jobId, Marker.FAILED), failure)
    else:
        marker = JobFailure(jobId=job.jobId, error=error, workerId=WORKER_ID, attempt=attempt, failedAt=now)
        await context.store.put_model(job_marker_key(job.jobId, Marker.FAILED), marker)


def _recently_republished(job: QueuedJob, stale: datetime) -> bool:
    """Whether the job's command was published again after `stale` (within the period)."""
    return (job.republishedAt or "") > stale.isoformat()


async def _republish(context: ServiceContext, job: QueuedJob, now: datetime) -> bool:
    """Publish the job's command again and note when; False (retried next run) if the broker refused."""
    try:
        await jobs.republish(context, job, SOURCE)
    except PublishFailed:
        log.warning("could not republish %s; next run tries again", job.jobId, exc_info=True)
        return False
    fields = {"republishedAt": now.isoformat(), "republishedAttempt": job.attempts or 0}
    await context.jobs.update_fields(job.jobId, fields)
    return True


def _queued(found: list[GenerationJob | TrainingJob | PortraitJob]) -> list[QueuedJob]:
    """The jobs a queue query found (only generations and trainings wait in queues)."""
    return [job for job in found if isinstance(job, GenerationJob | TrainingJob)]


async def reconcile(context: ServiceContext, now: datetime) -> Report:
    """One pass over waiting and held jobs of every queue."""
    settings = context.settings
    report = Report()
    stale = now - timedelta(seconds=settings.reconcile_queued_after_seconds)
    for kind in QUEUED_KINDS:
        for job in _queued(await context.jobs.waiting_since_before(kind, stale.isoformat())):
            if _recently_republished(job, stale):
                continue  # give the worker time before the next try
            if await _republish(context, job, now):
                report.republished.append(job.jobId)
        for job in _queued(await context.jobs.lease_lapsed(kind, now.timestamp())):
            if (job.attempts or 0) >= settings.reconcile_max_attempts:
                await _fail(context, job, now)
                report.failed.append(job.jobId)
                continue
            # Throttled like queued jobs: the command republished for this lapse is still on its way (behind
            # other jobs, or waiting for a rebalance), and a twin per pass only piles up duplicates. A claim
            # made since then (another attempt) that lapsed too is a new loss: that one goes out at once.
            republished_attempt = job.republishedAttempt if job.republishedAttempt is not None else -1
            same_attempt = republished_attempt == (job.attempts or 0)
            if same_attempt and _recently_republished(job, stale):
                continue
            if await _republish(context, job, now):
                report.republished.append(job.jobId)
    if report.republished or report.failed:
        log.info("reconciled: republished %s, failed %s", report.republished, report.failed)
    return report
