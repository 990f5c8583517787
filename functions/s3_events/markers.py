"""Turning one job marker into a conditional status update and a lifecycle event."""

from __future__ import annotations

import logging
from enum import StrEnum
from typing import Any

from events.envelope import utcnow
from events.markers import GenerationResult, JobFailure
from events.states import GenerationStatus
from events.storage_keys import JobMarkerRef, Marker
from infra.lifecycle import publish_lifecycle_once
from infra.repositories.jobs import AdvanceOutcome
from infra.runtime import ServiceContext

log = logging.getLogger(__name__)


class MarkerError(ValueError):
    """A marker whose body is missing or does not match its contract."""


_TARGETS: dict[Marker, GenerationStatus] = {
    Marker.RESULT: GenerationStatus.COMPLETED,
    Marker.FAILED: GenerationStatus.FAILED,
    Marker.CANCELED: GenerationStatus.CANCELED,
}


async def _fields_from_marker(context: ServiceContext, key: str, marker: Marker) -> dict[str, Any]:
    body = await context.store.get_json(key)
    if body is None:
        raise MarkerError(f"marker {key} does not exist")
    if marker is Marker.RESULT:
        result = GenerationResult.model_validate(body)
        return {
            "outputs": result.outputs,
            "completedAt": result.completedAt.isoformat(),
            "result": result.model_dump(mode="json", exclude={"outputs", "jobId"}),
        }
    if marker is Marker.FAILED:
        failure = JobFailure.model_validate(body)
        return {"error": failure.error.model_dump(), "completedAt": failure.failedAt.isoformat()}
    return {"completedAt": utcnow().isoformat()}


async def apply_marker(context: ServiceContext, key: str, ref: JobMarkerRef) -> StrEnum | None:
    """Apply one marker; returns the outcome, or None for markers that carry no status."""
    if ref.marker not in _TARGETS:
        return None  # progress.json of generation jobs carries nothing the API shows yet.
    target = _TARGETS[ref.marker]
    fields = await _fields_from_marker(context, key, ref.marker)
    advance = await context.jobs.advance(ref.job_id, target, fields)
    job = advance.job
    if advance.outcome in (AdvanceOutcome.MISSING, AdvanceOutcome.REJECTED):
        log.info("marker %s ignored: %s (job is %s)", key, advance.outcome, job["status"] if job else "missing")
        return advance.outcome
    assert job is not None
    await publish_lifecycle_once(context, job, target, source="/lorafoundry/s3-events")
    return advance.outcome
