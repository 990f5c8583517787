"""The jobs use case on fakes: a job is recorded, then its command published with the right key; a broker that
refuses or hangs fails the job with `queue_unavailable` and tells the caller to retry; the command is rebuilt
from the record alone."""

from __future__ import annotations

import pytest

from events.generation import GenerationRequested
from events.persistence import PublishFailed, RecordExists
from events.records.jobs import GenerationJob
from events.states import GenerationStatus
from events.topics import GENERATION_REQUESTS
from events.usecases import jobs
from events.usecases.errors import Unavailable
from tests.fakes import FakeBackends
from tests.usecases.builders import SOURCE, TENANT, generation_data


async def test_a_queued_generation_is_recorded_waiting_in_its_queue(backends: FakeBackends) -> None:
    job = await jobs.queue_generation(backends, TENANT, generation_data(), source=SOURCE, extra={"portraitId": "p"})
    stored = await backends.jobs.get_as("job_1", GenerationJob)
    assert stored is not None and stored == job
    assert (stored.status, stored.queue, stored.version, stored.portraitId) == (
        GenerationStatus.QUEUED,
        "generation",
        1,
        "p",
    )
    assert stored.request == generation_data()


async def test_the_command_goes_to_the_generation_topic_keyed_by_the_job(backends: FakeBackends) -> None:
    await jobs.queue_generation(backends, TENANT, generation_data(), source=SOURCE, traceparent=None)
    [sent] = backends.publisher.sent
    assert (sent.topic, sent.key) == (GENERATION_REQUESTS, "job_1")
    assert isinstance(sent.event, GenerationRequested)
    assert (sent.event.subject, sent.event.tenantid, sent.event.source) == ("job_1", TENANT, SOURCE)
    assert sent.event.data == generation_data()


async def test_a_refused_command_fails_its_job_and_asks_for_a_retry(backends: FakeBackends) -> None:
    backends.publisher.fail()
    with pytest.raises(Unavailable) as raised:
        await jobs.queue_generation(backends, TENANT, generation_data(), source=SOURCE)
    assert (raised.value.code, raised.value.retry_after_s) == ("queue_unavailable", 5)
    job = await backends.jobs.get_as("job_1", GenerationJob)
    assert job is not None and job.status is GenerationStatus.FAILED
    assert job.error is not None and (job.error.code, job.error.message) == ("queue_unavailable", raised.value.message)
    assert job.queue is None  # out of the waiting partition: the reconciler does not republish a failed job
    assert backends.publisher.sent == []


async def test_a_hung_broker_times_out_the_same_way(backends: FakeBackends, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "PUBLISH_TIMEOUT_S", 0.05)
    backends.publisher.hang()
    with pytest.raises(Unavailable) as raised:
        await jobs.queue_generation(backends, TENANT, generation_data(), source=SOURCE)
    assert raised.value.code == "queue_unavailable"
    job = await backends.jobs.get_as("job_1", GenerationJob)
    assert job is not None and job.status is GenerationStatus.FAILED
    assert job.error is not None and job.error.code == "queue_unavailable"


async def test_a_job_id_is_recorded_once_and_refused_twice_unless_asked(backends: FakeBackends) -> None:
    await jobs.queue_generation(backends, TENANT, generation_data(), source=SOURCE)
    with pytest.raises(RecordExists):
        await jobs.queue_generation(backends, TENANT, generation_data(), source=SOURCE)
    again = await jobs.queue_generation(backends, TENANT, generation_data(), source=SOURCE, republish_existing=True)
    assert list(backends.jobs.documents) == ["job_1"] and again.version == 1
    assert [s.key for s in backends.publisher.sent] == ["job_1", "job_1"]


async def test_republish_rebuilds_the_same_command_from_the_record(backends: FakeBackends) -> None:
    await jobs.queue_generation(backends, TENANT, generation_data(), source=SOURCE)
    stored = await backends.jobs.get_as("job_1", GenerationJob)
    assert stored is not None
    await jobs.republish(backends, stored, "/reconciler")
    first, second = backends.publisher.sent
    assert (second.topic, second.key) == (first.topic, first.key)
    assert (second.event.subject, second.event.tenantid) == (first.event.subject, first.event.tenantid)
    assert second.event.data == first.event.data
    assert second.event.source == "/reconciler"


async def test_a_refused_republish_leaves_the_job_waiting(backends: FakeBackends) -> None:
    job = await jobs.queue_generation(backends, TENANT, generation_data(), source=SOURCE)
    backends.publisher.fail()
    with pytest.raises(PublishFailed):
        await jobs.republish(backends, job, "/reconciler")
    stored = await backends.jobs.get_as("job_1", GenerationJob)
    assert stored is not None and stored.status is GenerationStatus.QUEUED and stored.queue == "generation"
