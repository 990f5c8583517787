"""`lorafoundry status` against the API served over real HTTP (uvicorn in a thread): every component answers, the
session's worker is listed live from its registry record, each consumer group's lag is there; and the registry
itself: a worker's record is written at start and gone after a clean stop."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from events.records.workers import WorkerRecord
from events.states import WorkerKind
from functions.api.app import create_app
from infra.local.processes import free_port
from infra.repositories.workers import WorkerRepository
from infra.status_command import cmd_status
from tests.support import bearer, eventually
from workers.registration import CurrentJob, WorkerRegistration

pytestmark = pytest.mark.integration

ADMIN_TOKEN = f"lfadm_test_{secrets.token_hex(12)}"


@contextlib.contextmanager
def served_api(settings) -> Iterator[str]:
    """The API with an operator token, served by uvicorn on a free loopback port in a thread of its own."""
    app = create_app(settings.model_copy(update={"admin_token": SecretStr(ADMIN_TOKEN)}))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="status test api", daemon=True)
    thread.start()
    try:
        ready = threading.Event()
        for _ in range(200):  # bounded wait for the server's own flag
            if server.started:
                ready.set()
                break
            ready.wait(0.05)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def worker_id_of(loop) -> str:
    """The session worker's id: its consumer loop is named '<kind> <worker id>'."""
    return loop.lifecycle.name.split(" ", 1)[1]


async def test_status_lists_components_lag_jobs_and_the_live_worker(bootstrapped, worker, monkeypatch, capsys) -> None:
    me = worker_id_of(worker)

    def shows_me_ready(status: dict) -> bool:
        return any(w["workerId"] == me and w["state"] in ("ready", "busy") for w in status["workers"])

    with served_api(bootstrapped) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            assert (await client.get("/v1/admin/status")).status_code == 401

            async def probe() -> dict:
                response = await client.get("/v1/admin/status", headers=bearer(ADMIN_TOKEN))
                assert response.status_code == 200, response.text
                return response.json()

            # The worker refreshes its record as it becomes ready: a moment after the fixture saw it ready.
            status = await eventually(probe, shows_me_ready, timeout_s=15, what="the session worker listed ready")
        monkeypatch.setenv("LF_ADMIN_TOKEN", ADMIN_TOKEN)
        args = argparse.Namespace(api=url, state_file="/nonexistent")
        exit_code = await asyncio.to_thread(cmd_status, args)
    printed = capsys.readouterr().out

    assert status["ok"] is True, status["components"]
    assert {c["name"]: c["ok"] for c in status["components"]} == {
        "api": True,
        "dynamodb": True,
        "s3": True,
        "kafka": True,
    }
    groups = {item["group"] for item in status["consumerLag"]}
    assert {
        bootstrapped.kafka_consumer_group,
        bootstrapped.kafka_training_consumer_group,
        bootstrapped.kafka_portraits_consumer_group,
        bootstrapped.kafka_webhooks_consumer_group,
    } == groups
    live = {w["workerId"]: w for w in status["workers"]}
    assert live[me]["kind"] == "generator" and live[me]["group"] == bootstrapped.kafka_consumer_group
    assert live[me]["metricsUrl"] is None  # no LF_METRICS_PORT in the session's settings
    assert status["jobs"] is not None and status["jobs"]["complete"] is True

    assert exit_code == 0
    for section in ("Components", "Consumer lag", "Jobs", "Live workers"):
        assert section in printed
    assert me in printed and bootstrapped.kafka_consumer_group in printed


async def test_status_exits_1_when_the_api_cannot_be_reached(monkeypatch, capsys) -> None:
    monkeypatch.setenv("LF_ADMIN_TOKEN", ADMIN_TOKEN)
    args = argparse.Namespace(api=f"http://127.0.0.1:{free_port()}", state_file="/nonexistent")
    assert await asyncio.to_thread(cmd_status, args) == 1
    assert "cannot reach the API" in capsys.readouterr().err


async def test_a_registration_is_live_while_kept_and_gone_after(context) -> None:
    repository = WorkerRepository(context.clients.dynamodb, context.settings.workers_table)
    current = CurrentJob()
    worker_id = f"test-worker-{secrets.token_hex(3)}"
    registration = WorkerRegistration(
        repository,
        worker_id=worker_id,
        kind=WorkerKind.TRAINER,
        group="trainers",
        interval_s=60,
        state=lambda: "busy",
        current_job=current,
    )
    current.job_id = "trn_123"

    async def records_of_mine() -> list[WorkerRecord]:
        return [w for w in await repository.live() if w.workerId == worker_id]

    async with registration.kept():
        (mine,) = await eventually(records_of_mine, bool, timeout_s=10, what="the worker's record")
        assert (mine.kind, mine.state, mine.jobId) == (WorkerKind.TRAINER, "busy", "trn_123")
        assert mine.expiresAt > time.time() + 60  # three intervals ahead
        # A record past its expiry is not live, though the TTL has not deleted it yet.
        assert worker_id not in {w.workerId for w in await repository.live(now=mine.expiresAt + 1)}
    assert worker_id not in {w.workerId for w in await repository.live()}


async def test_a_dead_workers_record_is_not_live(context) -> None:
    repository = WorkerRepository(context.clients.dynamodb, context.settings.workers_table)
    dead = WorkerRecord(
        workerId=f"dead-{secrets.token_hex(3)}",
        kind=WorkerKind.GENERATOR,
        group="g",
        host="h",
        pid=1,
        state="ready",
        expiresAt=1.0,  # long past: the TTL would delete it, lazily
    )
    await repository.put(dead)
    try:
        assert dead.workerId not in {w.workerId for w in await repository.live()}
    finally:
        await repository.delete(dead.workerId)
