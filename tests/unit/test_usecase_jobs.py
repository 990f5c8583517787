"""The jobs use case with in-memory ports: a command the broker refuses fails its job with one error shape
and tells the caller to retry; a job is recorded once however often it is adopted."""

from __future__ import annotations

import inspect

import pytest

from events.generation import GenerationRequestedData
from events.lifecycle import JobError
from events.states import GenerationStatus
from events.usecases import jobs
from events.usecases.errors import Conflict, Invalid, NotFound, Unavailable
from events.usecases.ports import Backends
from functions.api.errors import api_error_of
from infra.runtime import ServiceContext
from infra.settings import Settings
from tests.fakes import FakeBackends
from tests.support import generation_request


def _data(job_id: str = "job_1") -> GenerationRequestedData:
    return generation_request(job_id, "base", prompt="a cat")


async def test_a_refused_command_fails_its_job_and_asks_for_a_retry() -> None:
    backends = FakeBackends()
    backends.publisher.fail()
    with pytest.raises(Unavailable) as raised:
        await jobs.queue_generation(backends, "ten_1", _data(), source="/test")
    job = await backends.jobs.get("job_1")
    assert job is not None
    assert job.status == GenerationStatus.FAILED
    assert job.error == JobError(code="queue_unavailable", message=raised.value.message)
    rendered = api_error_of(raised.value)
    assert (rendered.status, rendered.code, rendered.headers) == (503, "queue_unavailable", {"Retry-After": "5"})


async def test_a_job_with_a_known_id_is_published_again_not_recorded_twice() -> None:
    backends = FakeBackends()
    for _ in range(2):
        await jobs.queue_generation(backends, "ten_1", _data(), source="/test", republish_existing=True)
    assert list(backends.jobs.documents) == ["job_1"]
    assert [(sent.topic, sent.key) for sent in backends.publisher.sent] == [
        ("lorafoundry.generation.requests", "job_1")
    ] * 2


def test_each_kind_of_refusal_has_its_status() -> None:
    statuses = {kind: api_error_of(kind("code", "message", "field")).status for kind in (Invalid, NotFound, Conflict)}
    assert statuses == {Invalid: 422, NotFound: 404, Conflict: 409}


async def test_the_service_context_offers_every_port() -> None:
    context = ServiceContext(Settings(_env_file=None))  # type: ignore[call-arg]
    members = [name for name, _ in inspect.getmembers(Backends) if not name.startswith("_")]
    assert members and all(hasattr(context, name) for name in members)
