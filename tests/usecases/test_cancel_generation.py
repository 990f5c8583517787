"""Canceling a generation on fakes: a queued one ends at once and says so once, a running one asks its
worker to stop, a finished one (or one finished behind a stale read) is a conflict."""

from __future__ import annotations

import pytest

from events.lifecycle import JOB_CANCELED
from events.records.jobs import GenerationJob
from events.states import GenerationStatus, JobKind
from events.topics import JOB_LIFECYCLE
from events.usecases import jobs
from events.usecases.errors import Conflict
from tests.fakes import FakeBackends
from tests.usecases.builders import SOURCE, TENANT, generation_data


async def _queued(backends: FakeBackends, job_id: str = "job_1") -> GenerationJob:
    return await jobs.queue_generation(backends, TENANT, generation_data(job_id), source=SOURCE)


async def _running(backends: FakeBackends, job: GenerationJob) -> GenerationJob:
    claimed = await backends.jobs.claim(job.jobId, "worker-1", 60, kind=JobKind.GENERATION)
    assert isinstance(claimed, GenerationJob)
    return claimed


async def test_canceling_a_queued_generation_ends_it_at_once_and_says_so_once(backends: FakeBackends) -> None:
    queued = await _queued(backends)
    canceled = await jobs.cancel_generation(backends, queued, source=SOURCE)
    assert canceled.status is GenerationStatus.CANCELED and canceled.canceledBy == "user" and canceled.completedAt
    assert canceled.queue is None and canceled.outputs is None
    # No worker takes it now: a claim needs it queued.
    assert await backends.jobs.claim(queued.jobId, "worker-1", 60, kind=JobKind.GENERATION) is None
    with pytest.raises(Conflict) as raised:
        await jobs.cancel_generation(backends, canceled, source=SOURCE)
    assert raised.value.code == "job_finished" and "already canceled" in raised.value.message
    events = backends.publisher.on(JOB_LIFECYCLE)
    assert [(e.event.type, e.event.data.status) for e in events] == [(JOB_CANCELED, GenerationStatus.CANCELED)]
    stored = await backends.jobs.get_as(queued.jobId, GenerationJob)
    assert stored is not None and stored.publishedEvents == {"canceled"}


async def test_canceling_a_running_generation_asks_its_worker_to_stop(backends: FakeBackends) -> None:
    running = await _running(backends, await _queued(backends))
    asked = await jobs.cancel_generation(backends, running, source=SOURCE)
    assert asked.status is GenerationStatus.PROCESSING and asked.cancelRequested is True and asked.cancelRequestedAt
    assert asked.version == running.version + 1
    assert backends.publisher.on(JOB_LIFECYCLE) == []


async def test_a_cancel_read_as_queued_but_claimed_since_asks_the_worker_instead(backends: FakeBackends) -> None:
    queued = await _queued(backends)
    await _running(backends, queued)  # a worker claims it after the caller read it as queued
    asked = await jobs.cancel_generation(backends, queued, source=SOURCE)
    assert asked.status is GenerationStatus.PROCESSING and asked.cancelRequested is True
    assert backends.publisher.on(JOB_LIFECYCLE) == []


@pytest.mark.parametrize("word", ["completed", "failed"])
async def test_canceling_a_finished_generation_is_a_conflict(backends: FakeBackends, word: str) -> None:
    running = await _running(backends, await _queued(backends))
    ended = (await backends.jobs.advance(running.jobId, GenerationStatus(word))).record
    assert isinstance(ended, GenerationJob)
    with pytest.raises(Conflict) as raised:
        await jobs.cancel_generation(backends, ended, source=SOURCE, field="predictionId")
    assert raised.value.code == "job_finished" and f"already {word}" in raised.value.message
    assert raised.value.field == "predictionId"
    # The stale record in hand says processing: the conditional write finds it finished all the same.
    with pytest.raises(Conflict):
        await jobs.cancel_generation(backends, running, source=SOURCE)
    stored = await backends.jobs.get_as(running.jobId, GenerationJob)
    assert stored is not None and stored.cancelRequested is None


async def test_a_portraits_style_is_not_canceled_on_its_own(backends: FakeBackends) -> None:
    record = jobs.generation_record(TENANT, generation_data("job_style"), {"portraitId": "prt_1"})
    style = await jobs.queue_job(backends, record, source=SOURCE)
    with pytest.raises(Conflict) as raised:
        await jobs.cancel_generation(backends, style, source=SOURCE)
    assert raised.value.code == "part_of_portrait" and "prt_1" in raised.value.message
    stored = await backends.jobs.get_as(style.jobId, GenerationJob)
    assert stored is not None and stored.status is GenerationStatus.QUEUED and not stored.cancelRequested
