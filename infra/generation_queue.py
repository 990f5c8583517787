"""Queueing a generation job: the one way a job record and its command come to exist, whoever asks
(the API for a user, the portrait flow for a finished training)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from events.generation import GenerationRequested, GenerationRequestedData
from events.lifecycle import JobError
from events.persistence import PublishFailed
from events.states import GenerationStatus
from events.topics import GENERATION_REQUESTS
from infra.repositories.jobs import JOB_QUEUE_GENERATION, JobExists
from infra.runtime import ServiceContext

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 10.0


class QueueUnavailable(RuntimeError):
    """The broker did not take the command; the job was failed with that reason."""


async def queue_generation(
    context: ServiceContext,
    tenant_id: str,
    data: GenerationRequestedData,
    *,
    source: str,
    extra: dict[str, Any] | None = None,
    traceparent: str | None = None,
    republish_existing: bool = False,
) -> dict[str, Any]:
    """Record a queued job, then publish its command; returns the job record.

    DynamoDB is written first so a job on the topic always has a record. If the broker cannot take the
    command, the job is failed with the reason and QueueUnavailable raised, so nothing is left queued
    forever. With `republish_existing`, a job id that already exists (a retried caller with a deterministic
    id) is published again: workers skip a job that is running or done, so at-least-once is safe.
    """
    record = {
        "jobId": data.jobId,
        "tenantId": tenant_id,
        "kind": "generation",
        "queue": JOB_QUEUE_GENERATION,
        "modelId": data.modelId,
        "request": data.model_dump(mode="json"),
        **(extra or {}),
    }
    if republish_existing:
        with contextlib.suppress(JobExists):
            await context.jobs.create(record)
        job = await context.jobs.get(data.jobId)
        assert job is not None
    else:
        job = await context.jobs.create(record)
    event = GenerationRequested(
        subject=data.jobId, tenantid=tenant_id, traceparent=traceparent, source=source, data=data
    )
    try:
        await asyncio.wait_for(context.publisher.publish(GENERATION_REQUESTS, event), PUBLISH_TIMEOUT_S)
    except (PublishFailed, TimeoutError) as exc:
        log.error("could not publish job %s: %s", data.jobId, exc)
        error = JobError(code="queue_unavailable", message="the job queue is unavailable; try again later")
        await context.jobs.advance(data.jobId, GenerationStatus.FAILED, {"error": error.model_dump()})
        raise QueueUnavailable(error.message) from exc
    return job
