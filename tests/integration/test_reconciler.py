"""Broker loss: the embedded broker restarts with its memory wiped while jobs are queued, and the reconciler
brings every accepted job to completion, none lost, none run twice. On a broker of its own, so the rest of
the session's tests keep theirs."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from events.envelope import utcnow
from events.records.jobs import GenerationJob, PortraitJob, TrainingJob
from events.states import GenerationStatus, JobKind
from functions.reconciler.handler import process_schedule
from functions.reconciler.reconcile import reconcile
from infra.bootstrap import bootstrap
from infra.runtime import ServiceContext
from tests.conftest import IsolatedApi, isolated_api, running_service
from tests.support import bearer, eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def isolated(moto_endpoint: str, tmp_path) -> AsyncIterator[IsolatedApi]:
    async with isolated_api(
        moto_endpoint,
        tmp_path,
        "lfr",
        "tenant-r",
        kafka_consumer_group=f"rec-{secrets.token_hex(3)}",
        reconcile_queued_after_seconds=0,
        reconcile_max_attempts=2,
        worker_lease_seconds=30,
    ) as env:
        yield env


async def _submit(env: IsolatedApi, seed: int) -> str:
    response = await env.client.post(
        "/v1/images/generate",
        json={"modelId": "tiny-sd", "prompt": "a fox", "numInferenceSteps": 2, "numOutputs": 2, "seed": seed},
        headers=bearer(env.api_key),
    )
    assert response.status_code == 202, response.text
    return response.json()["jobId"]


async def test_a_wiped_broker_loses_no_job_and_runs_none_twice(isolated: IsolatedApi) -> None:
    env = isolated
    queued = [await _submit(env, seed) for seed in range(3)]
    # Two more jobs whose worker "died": one with an attempt left, one out of attempts.
    lapsed, exhausted = await _submit(env, 10), await _submit(env, 11)
    assert await env.context.jobs.claim(lapsed, "dead-worker", lease_seconds=0, kind=JobKind.GENERATION)
    for _ in range(2):
        assert await env.context.jobs.claim(exhausted, "dead-worker", lease_seconds=0, kind=JobKind.GENERATION)

    # The broker loses everything: every command published so far is gone.
    env.broker.stop()
    env.broker.start()
    await bootstrap(env.settings)  # the operator's topics, as a fresh cluster gets them

    from workers.generator.__main__ import serve

    async with running_service(lambda stop, ready: serve(env.settings, stop, on_ready=ready), "worker", 60):
        report = await reconcile(env.context, utcnow())
        assert sorted(report.republished) == sorted([*queued, lapsed])
        assert report.failed == [exhausted]

        async def statuses() -> dict[str, GenerationJob | TrainingJob | PortraitJob | None]:
            return {job_id: await env.context.jobs.get(job_id) for job_id in [*queued, lapsed, exhausted]}

        ended = (GenerationStatus.COMPLETED, GenerationStatus.FAILED)
        jobs = await eventually(
            statuses,
            lambda found: all(j is not None and j.status in ended for j in found.values()),
            timeout_s=90,
            what="every job to end",
        )
        # A second pass finds nothing to do: every job ended.
        assert await process_schedule(env.context, {"source": "aws.events"}) == {"republished": [], "failed": []}

    for job_id in queued:
        job = jobs[job_id]
        assert job is not None and job.status == GenerationStatus.COMPLETED and job.attempts == 1, job
        assert len(job.outputs or []) == 2
    lapsed_job, exhausted_job = jobs[lapsed], jobs[exhausted]
    assert lapsed_job is not None and exhausted_job is not None
    assert lapsed_job.status == GenerationStatus.COMPLETED and lapsed_job.attempts == 2  # its first worker died
    assert exhausted_job.status == GenerationStatus.FAILED
    assert exhausted_job.error is not None and exhausted_job.error.code == "worker_lost"
    for job_id in [*queued, lapsed]:
        listed = await env.context.store.list_keys(f"jobs/{job_id}/outputs/")
        assert len(listed) == 2, listed  # exactly one set of outputs


async def test_a_recently_republished_job_is_left_alone(isolated: IsolatedApi) -> None:
    env = isolated
    settings = env.settings.model_copy(update={"reconcile_queued_after_seconds": 3600})
    context = await ServiceContext(settings).open()
    try:
        job_id = await _submit(env, 1)
        assert (await reconcile(context, utcnow())).republished == []  # not stale yet
    finally:
        await context.close()
    first = await reconcile(env.context, utcnow())
    assert job_id in first.republished
    record = await env.context.jobs.get(job_id)
    assert record is not None and record.republishedAt


async def test_a_lapsed_lease_is_republished_at_most_once_per_period(isolated: IsolatedApi) -> None:
    # Issue 12: every pass republished every lapsed job (20 worker kills during 100 jobs made 563 of them).
    env = isolated
    settings = env.settings.model_copy(update={"reconcile_queued_after_seconds": 3600, "reconcile_max_attempts": 5})
    context = await ServiceContext(settings).open()
    try:
        job_id = await _submit(env, 2)
        assert await env.context.jobs.claim(job_id, "dead-worker", lease_seconds=0, kind=JobKind.GENERATION)
        now = utcnow()
        assert (await reconcile(context, now)).republished == [job_id]
        # The next passes within the period leave it alone: its command is on its way.
        for later in (1, 60, 3599):
            assert (await reconcile(context, now + timedelta(seconds=later))).republished == []
        # Once the period is over and the lease is still lapsed, it is tried again.
        assert (await reconcile(context, now + timedelta(seconds=3601))).republished == [job_id]
        assert (await reconcile(context, now + timedelta(seconds=3602))).republished == []
        # Another worker claimed it meanwhile and died too: a new loss, republished at once, then throttled.
        assert await env.context.jobs.claim(job_id, "second-dead-worker", lease_seconds=0, kind=JobKind.GENERATION)
        assert (await reconcile(context, now + timedelta(seconds=3603))).republished == [job_id]
        assert (await reconcile(context, now + timedelta(seconds=3604))).republished == []
    finally:
        await context.close()
