"""A worker's health on ECS: the heartbeat its loop touches, `python -m workers.health` reading it, and a job
handed back unfinished when the worker stops (fake consumer, no broker)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from infra.settings import Settings
from tests.support import eventually
from tests.unit.test_worker_state import TP, FakeConsumer, Ping, PingData, loop_with, ping_record
from workers.consumer import HandBack, Route
from workers.health import Heartbeat, check, main
from workers.service import HEARTBEAT_TASK, TaskProtection, beating

REPO = Path(__file__).resolve().parents[2]


def _settings(path: Path | None, max_age: float = 60.0) -> Settings:
    return Settings(_env_file=None, worker_heartbeat_path=path, worker_heartbeat_max_age_seconds=max_age)  # type: ignore[call-arg]


def test_a_beat_touches_the_file_at_most_once_a_second(tmp_path: Path) -> None:
    now = [100.0]
    path = tmp_path / "run" / "heartbeat"
    heartbeat = Heartbeat(path, clock=lambda: now[0])
    heartbeat.beat()
    assert path.exists()  # its folder is made
    os.utime(path, (1, 1))
    now[0] += 0.5
    heartbeat.beat()
    assert path.stat().st_mtime == 1  # too soon: not touched again
    now[0] += 1.0
    heartbeat.beat()
    assert path.stat().st_mtime > 1
    Heartbeat(None).beat()  # no path (the embedded stack): nothing to do


def test_check_by_the_heartbeats_age(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat"
    assert check(_settings(None)) == (
        False,
        "unhealthy: LF_WORKER_HEARTBEAT_PATH is not set, so no heartbeat is written",
    )
    healthy, line = check(_settings(path))
    assert not healthy and "no heartbeat" in line
    path.touch()
    assert check(_settings(path))[0] and main(_settings(path)) == 0
    stale = time.time() - 61
    os.utime(path, (stale, stale))
    healthy, line = check(_settings(path, max_age=60))
    assert not healthy and "limit 60 s" in line
    assert main(_settings(path, max_age=60)) == 1


def test_the_containers_health_command(tmp_path: Path) -> None:
    """What ECS runs: `python -m workers.health`, configured by the task's environment."""
    path = tmp_path / "heartbeat"
    path.touch()
    env = {**os.environ, "LF_WORKER_HEARTBEAT_PATH": str(path), "LF_WORKER_HEARTBEAT_MAX_AGE_SECONDS": "60"}
    command = [sys.executable, "-m", "workers.health"]
    healthy = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    stale = time.time() - 120
    os.utime(path, (stale, stale))
    unhealthy = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert unhealthy.returncode == 1 and unhealthy.stdout.startswith("unhealthy")


async def _wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait on a synchronous condition with the suite's one deadline-bounded poll (tests.support.eventually)."""

    async def probe() -> bool:
        return condition()

    await eventually(probe, bool, timeout_s=timeout_s)


async def test_the_loop_beats_while_polling_and_while_a_job_runs() -> None:
    beats: list[str] = []
    stop = asyncio.Event()
    release = asyncio.Event()
    loop = None

    async def handle(event: Ping) -> None:
        beats.append("job started")
        await release.wait()

    loop = loop_with(FakeConsumer([ping_record(3)]), handle)
    loop.on_alive = lambda: beats.append("beat")
    running = asyncio.create_task(loop.run(stop))
    await _wait_until(lambda: "job started" in beats)
    during = beats.index("job started")
    await _wait_until(lambda: beats[during:].count("beat") >= 3)  # the keep-alive polls beat too
    release.set()
    stop.set()
    await asyncio.wait_for(running, 5)
    assert beats[0] == "beat" and loop.handled == 1


async def test_a_job_handed_back_is_left_uncommitted_and_not_retried() -> None:
    stop = asyncio.Event()
    calls: list[int] = []
    consumer = FakeConsumer([ping_record(7), ping_record(8, n=2)])

    async def handle(event: Ping) -> None:
        calls.append(event.data.n)
        stop.set()  # the worker was asked to stop: its job gives itself back
        raise HandBack()

    loop = loop_with(consumer, handle)
    await asyncio.wait_for(loop.run(stop), 5)
    assert calls == [1]  # neither retried nor followed by the next record
    assert consumer.commits == []  # the next owner of the partition reads it again
    assert consumer.seeks == [7] and loop.handled == 0
    assert TP in consumer.assignment()


async def test_the_set_up_beats_until_it_ends(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat"
    heartbeat = Heartbeat(path, min_interval_s=0)
    async with beating(heartbeat, interval_s=0.01):
        await _wait_until(path.exists)
        os.utime(path, (1, 1))
        await _wait_until(lambda: path.stat().st_mtime > 1)  # beats again while the set-up awaits
    # After the block the beating task is gone: nothing beats for a set-up that ended (the loop's beats take over).
    # (The loop is the session's, shared with other tests' background tasks: the beating task is found by name.)
    assert not [task for task in asyncio.all_tasks() if task.get_name() == HEARTBEAT_TASK and not task.done()]


async def test_a_job_is_protected_from_scale_in_while_it_runs() -> None:
    calls: list[tuple[str, str, dict]] = []
    during: list[dict] = []

    def agent(request: httpx.Request) -> httpx.Response:
        calls.append((request.method, request.url.path, json.loads(request.content)))
        return httpx.Response(200, json={"protection": {}})

    async def handle(event: Ping) -> None:
        during.append(calls[-1][2])
        raise RuntimeError("the job failed")

    protection = TaskProtection("http://agent.invalid/v1", transport=httpx.MockTransport(agent))
    routes = protection.protecting({"test.ping": Route(Ping, handle)})
    with pytest.raises(RuntimeError):
        await routes["test.ping"].handle(Ping(type="test.ping", subject="s", tenantid="t", data=PingData(n=1)))
    assert during == [{"ProtectionEnabled": True, "ExpiresInMinutes": TaskProtection.EXPIRES_IN_MINUTES}]
    # Lifted again though the job failed.
    assert calls[-1] == ("PUT", "/v1/task-protection/v1/state", {"ProtectionEnabled": False})
    assert len(calls) == 2


async def test_protection_is_best_effort_and_off_outside_ecs() -> None:
    handled: list[int] = []

    async def handle(event: Ping) -> None:
        handled.append(event.data.n)

    def refusing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": "no task"})

    event = Ping(type="test.ping", subject="s", tenantid="t", data=PingData(n=1))
    for protection in (TaskProtection(None), TaskProtection("http://agent.invalid", httpx.MockTransport(refusing))):
        await protection.protecting({"test.ping": Route(Ping, handle)})["test.ping"].handle(event)
    assert handled == [1, 1]  # the job ran both times
