"""Lifecycle events on fakes: published once per status, with a stable id, so a send that failed and is
retried sends the same event."""

from __future__ import annotations

import pytest

from events.lifecycle import JOB_FAILED, JOB_PROGRESS, JOB_STARTED, JOB_SUCCEEDED, JobError, JobProgress
from events.persistence import PublishFailed
from events.records.jobs import GenerationJob
from events.states import GenerationStatus, JobKind
from events.topics import JOB_LIFECYCLE
from events.usecases import jobs
from events.usecases.lifecycle import publish_lifecycle_once, publish_progress_event
from tests.fakes import FakeBackends
from tests.usecases.builders import SOURCE, TENANT, generation_data


async def _job(backends: FakeBackends, job_id: str = "job_1") -> GenerationJob:
    job = await backends.jobs.get_as(job_id, GenerationJob)
    assert job is not None
    return job


async def _queued(backends: FakeBackends) -> GenerationJob:
    await jobs.queue_generation(backends, TENANT, generation_data(), source=SOURCE)
    backends.publisher.sent.clear()
    backends.publisher.attempts = 0
    return await _job(backends)


async def test_each_status_is_published_once(backends: FakeBackends) -> None:
    await _queued(backends)
    await backends.jobs.claim("job_1", "worker-1", 60, kind=JobKind.GENERATION)
    for _ in range(2):  # the second time: a redelivery of whatever caused it, reading the job again
        await publish_lifecycle_once(backends, await _job(backends), GenerationStatus.PROCESSING, SOURCE)
    await backends.jobs.advance("job_1", GenerationStatus.COMPLETED, {"outputs": ["jobs/job_1/0.png"]})
    for _ in range(2):
        await publish_lifecycle_once(backends, await _job(backends), GenerationStatus.COMPLETED, SOURCE)
    sent = backends.publisher.on(JOB_LIFECYCLE)
    assert [(s.event.type, s.event.id, s.key) for s in sent] == [
        (JOB_STARTED, "job_1:processing", "job_1"),
        (JOB_SUCCEEDED, "job_1:completed", "job_1"),
    ]
    assert sent[1].event.data.outputs == ["jobs/job_1/0.png"] and sent[0].event.data.outputs == []
    assert (await _job(backends)).publishedEvents == {"processing", "completed"}


async def test_a_failed_send_retried_sends_the_same_event(backends: FakeBackends) -> None:
    await _queued(backends)
    error = JobError(code="generation_error", message="out of memory")
    await backends.jobs.advance("job_1", GenerationStatus.FAILED, {"error": error})
    backends.publisher.fail(times=1)
    with pytest.raises(PublishFailed):
        await publish_lifecycle_once(backends, await _job(backends), GenerationStatus.FAILED, SOURCE)
    assert (await _job(backends)).publishedEvents is None  # not recorded as sent: a retry sends it
    await publish_lifecycle_once(backends, await _job(backends), GenerationStatus.FAILED, SOURCE)
    await publish_lifecycle_once(backends, await _job(backends), GenerationStatus.FAILED, SOURCE)
    [sent] = backends.publisher.on(JOB_LIFECYCLE)
    assert (sent.event.type, sent.event.id) == (JOB_FAILED, "job_1:failed")
    assert sent.event.data.error == error
    [refused] = backends.publisher.refused
    assert refused.event.id == sent.event.id and refused.event.data.status == sent.event.data.status
    assert backends.publisher.attempts == 2


async def test_progress_is_announced_but_not_recorded(backends: FakeBackends) -> None:
    await _queued(backends)
    job = await backends.jobs.claim("job_1", "worker-1", 60, kind=JobKind.GENERATION)
    assert job is not None
    await publish_progress_event(backends, job, SOURCE, progress=JobProgress(step=3, totalSteps=10))
    [sent] = backends.publisher.on(JOB_LIFECYCLE)
    assert (sent.event.type, sent.event.id, sent.event.data.status) == (
        JOB_PROGRESS,
        "job_1:progress:3",
        GenerationStatus.PROCESSING,
    )
    assert (await _job(backends)).publishedEvents is None
