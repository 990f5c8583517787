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
from events.storage_keys import Marker, job_marker_key, training_marker_key
from events.training import TrainingFailure
from events.usecases import jobs
from infra.repositories.jobs import JobRepository
from infra.runtime import ServiceContext

log = logging.getLogger(__name__)

SOURCE = "/lorafoundry/reconciler"
WORKER_ID = "reconciler"


@dataclass
class Report:
    """What one run did, by job id."""

    republished: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


async def _fail(context: ServiceContext, job: dict, now: datetime) -> None:
    error = JobError(
        code="worker_lost",
        message=f"the job's worker stopped answering {job.get('attempts', 0)} times; it was given up",
    )
    attempt = max(1, int(job.get("attempts", 1)))
    if job.get("kind") == "training":
        failure = TrainingFailure(
            trainingId=job["jobId"], error=error, workerId=WORKER_ID, attempt=attempt, failedAt=now
        )
        await context.store.put_model(training_marker_key(job["jobId"], Marker.FAILED), failure)
    else:
        marker = JobFailure(jobId=job["jobId"], error=error, workerId=WORKER_ID, attempt=attempt, failedAt=now)
        await context.store.put_model(job_marker_key(job["jobId"], Marker.FAILED), marker)


def _recently_republished(job: dict, stale: datetime) -> bool:
    """Whether the job's command was published again after `stale` (within the period)."""
    return job.get("republishedAt", "") > stale.isoformat()


async def _republish(context: ServiceContext, repository: JobRepository, job: dict, now: datetime) -> bool:
    """Publish the job's command again and note when; False (retried next run) if the broker refused."""
    try:
        await jobs.republish(context, job, SOURCE)
    except PublishFailed:
        log.warning("could not republish %s; next run tries again", job["jobId"], exc_info=True)
        return False
    fields = {"republishedAt": now.isoformat(), "republishedAttempt": int(job.get("attempts", 0))}
    await repository.update_fields(job["jobId"], fields)
    return True


async def reconcile(context: ServiceContext, now: datetime) -> Report:
    """One pass over waiting and held jobs of every queue."""
    settings = context.settings
    report = Report()
    stale = now - timedelta(seconds=settings.reconcile_queued_after_seconds)
    # MERGE: one `context.jobs`, asked per queue (generation, training).
    repositories: tuple[JobRepository, ...] = (context.jobs, context.trainings)
    for repository in repositories:
        for job in await repository.waiting_since_before(stale.isoformat()):
            if _recently_republished(job, stale):
                continue  # give the worker time before the next try
            if await _republish(context, repository, job, now):
                report.republished.append(job["jobId"])
        for job in await repository.lease_lapsed(now.timestamp()):
            if int(job.get("attempts", 0)) >= settings.reconcile_max_attempts:
                await _fail(context, job, now)
                report.failed.append(job["jobId"])
                continue
            # Throttled like queued jobs: the command republished for this lapse is still on its way (behind
            # other jobs, or waiting for a rebalance), and a twin per pass only piles up duplicates. A claim
            # made since then (another attempt) that lapsed too is a new loss: that one goes out at once.
            same_attempt = int(job.get("republishedAttempt", -1)) == int(job.get("attempts", 0))
            if same_attempt and _recently_republished(job, stale):
                continue
            if await _republish(context, repository, job, now):
                report.republished.append(job["jobId"])
    if report.republished or report.failed:
        log.info("reconciled: republished %s, failed %s", report.republished, report.failed)
    return report
