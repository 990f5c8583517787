"""The reconciler on fakes: what the sparse queue and in-flight partitions show it, it publishes again, at
most once per period and once per lapsed claim, and a job whose worker kept vanishing is failed by marker."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from events.envelope import utcnow
from events.markers import JobFailure
from events.states import JobKind
from events.storage_keys import Marker, job_marker_key, training_marker_key
from events.topics import GENERATION_REQUESTS, TRAINING_REQUESTS
from events.usecases import jobs
from events.usecases.errors import Unavailable
from functions.reconciler.reconcile import reconcile
from tests.fakes import FakeBackends
from tests.usecases.builders import SOURCE, TENANT, generation_data, start, trainable_model


def _later(backends: FakeBackends, periods: float) -> datetime:
    """`periods` reconcile periods from now."""
    return utcnow() + timedelta(seconds=periods * backends.settings.reconcile_queued_after_seconds + 1)


async def test_a_job_left_waiting_is_published_again_once_per_period(backends: FakeBackends) -> None:
    await jobs.queue_generation(backends, TENANT, generation_data(), source=SOURCE)
    assert (await reconcile(backends, utcnow())).republished == []  # not waiting long enough yet
    first = await reconcile(backends, _later(backends, 1))
    assert first.republished == ["job_1"]
    assert (await reconcile(backends, _later(backends, 1))).republished == []  # throttled
    assert (await reconcile(backends, _later(backends, 2.5))).republished == ["job_1"]
    assert [s.key for s in backends.publisher.on(GENERATION_REQUESTS)] == ["job_1"] * 3
    stored = await backends.jobs.get("job_1")
    assert stored is not None and stored.republishedAt and stored.republishedAttempt == 0


async def test_a_waiting_training_goes_out_again_keyed_by_its_model(backends: FakeBackends) -> None:
    training = await start(backends, await trainable_model(backends))
    assert (await reconcile(backends, _later(backends, 1))).republished == [training.jobId]
    assert [s.key for s in backends.publisher.on(TRAINING_REQUESTS)] == [training.modelId] * 2


async def test_a_refused_republish_is_tried_on_the_next_run(backends: FakeBackends) -> None:
    await jobs.queue_generation(backends, TENANT, generation_data(), source=SOURCE)
    backends.publisher.fail()
    assert (await reconcile(backends, _later(backends, 1))).republished == []
    stored = await backends.jobs.get("job_1")
    assert stored is not None and stored.republishedAt is None
    backends.publisher.recover()
    assert (await reconcile(backends, _later(backends, 1))).republished == ["job_1"]


async def test_a_lapsed_lease_is_republished_once_per_claim_then_failed(backends: FakeBackends) -> None:
    await jobs.queue_generation(backends, TENANT, generation_data(), source=SOURCE)
    now = _later(backends, 0)
    for attempt in range(1, backends.settings.reconcile_max_attempts):
        await backends.jobs.claim("job_1", f"worker-{attempt}", -1, kind=JobKind.GENERATION)  # then it vanished
        assert (await reconcile(backends, now)).republished == ["job_1"]
        assert (await reconcile(backends, now)).republished == []  # that lapse's command is on its way
    await backends.jobs.claim("job_1", "worker-last", -1, kind=JobKind.GENERATION)
    report = await reconcile(backends, now)
    assert (report.republished, report.failed) == ([], ["job_1"])
    marker = JobFailure.model_validate(json.loads(backends.store.objects[job_marker_key("job_1", Marker.FAILED)]))
    assert marker.error.code == "worker_lost" and marker.attempt == backends.settings.reconcile_max_attempts


async def test_a_lost_training_is_failed_by_its_training_marker(backends: FakeBackends) -> None:
    training = await start(backends, await trainable_model(backends))
    for attempt in range(backends.settings.reconcile_max_attempts):
        await backends.jobs.claim(training.jobId, f"worker-{attempt}", -1, kind=JobKind.TRAINING)
    report = await reconcile(backends, _later(backends, 0))
    assert report.failed == [training.jobId]
    assert training_marker_key(training.jobId, Marker.FAILED) in backends.store.objects


async def test_jobs_held_or_finished_are_left_alone(backends: FakeBackends) -> None:
    await jobs.queue_generation(backends, TENANT, generation_data("job_held"), source=SOURCE)
    await backends.jobs.claim("job_held", "worker-1", 3600, kind=JobKind.GENERATION)
    backends.publisher.fail()
    with pytest.raises(Unavailable):
        await jobs.queue_generation(backends, TENANT, generation_data("job_failed"), source=SOURCE)
    backends.publisher.recover()
    report = await reconcile(backends, _later(backends, 1))
    assert (report.republished, report.failed) == ([], [])
    assert [s.key for s in backends.publisher.sent] == ["job_held"]  # its first command only
