"""Chaos: two generator workers (real processes, restarted by the stack's supervisor) serve a stream of tiny
jobs while the test SIGKILLs whichever worker holds a lease. Every job completes, with exactly one set of
outputs in S3, and no status a client sees ever goes backwards.

On a broker of its own: the generation topic is shared by name, and the session's worker must not see these
jobs. Bounded: three kills, each but the last waiting for the killed worker to be back, so one always serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import httpx
import pytest

from events.envelope import utcnow
from events.states import GENERATION, GenerationStatus, StateMachine
from functions.reconciler.reconcile import reconcile
from infra.local.processes import ManagedProcess
from infra.local.supervision import Backoff, RestartPolicy
from infra.local.supervisor import ProcessSupervisor
from infra.runtime import ServiceContext
from infra.settings import Settings
from tests.conftest import isolated_api
from tests.support import bearer, eventually, settings_env

pytestmark = [pytest.mark.integration, pytest.mark.serial]

READY = "generator worker ready"
RESTART_MARK = "--- lorafoundry supervisor:"
ROUNDS = 2  # one kill per round
JOBS_PER_ROUND = 8
OUTPUTS = 2
JOB = {"modelId": "tiny-sd", "prompt": "chaos", "numInferenceSteps": 6, "numOutputs": OUTPUTS}


def reachable(machine: StateMachine, start: GenerationStatus) -> set[GenerationStatus]:
    """Every status `start` can lead to, itself included (a poll may miss the ones in between)."""
    seen, frontier = {start}, [start]
    while frontier:
        for following in machine.transitions[frontier.pop()]:
            if following not in seen:
                seen.add(following)  # type: ignore[arg-type]
                frontier.append(following)  # type: ignore[arg-type]
    return seen  # type: ignore[return-value]


def forward_only(sequence: list[str]) -> bool:
    """Whether each status seen is reachable from the one seen before it."""
    return all(GenerationStatus(b) in reachable(GENERATION, GenerationStatus(a)) for a, b in pairwise(sequence))


def test_forward_only_reads_the_state_machine() -> None:
    assert forward_only(["queued", "processing", "processing", "completed"])
    assert forward_only(["queued", "completed"])  # the poll missed processing
    assert not forward_only(["processing", "queued"])
    assert not forward_only(["completed", "processing"])


@dataclass
class Chaos:
    settings: Settings
    context: ServiceContext
    client: httpx.AsyncClient
    key: str
    log_dir: Path
    seen: dict[str, list[str]] = field(default_factory=dict)


@pytest.fixture
async def chaos(moto_endpoint: str, tmp_path: Path) -> AsyncIterator[Chaos]:
    async with isolated_api(
        moto_endpoint,
        tmp_path,
        "lfx",
        "tenant-chaos",
        kafka_consumer_group=f"chaos-{secrets.token_hex(3)}",
        worker_lease_seconds=5,  # the least allowed: a dead worker's job is free again soon
        # Longer than a takeover: a queued job's command is only late, not lost, and a twin of each on every
        # pass would bury the partitions in duplicates. Lapsed leases are republished once per this period.
        reconcile_queued_after_seconds=30,
        reconcile_max_attempts=10,  # a job may be killed more than once; it must still complete
    ) as env:
        yield Chaos(env.settings, env.context, env.client, env.api_key, tmp_path)


def ready(worker: ManagedProcess) -> bool:
    """Running, and ready since its last (re)start."""
    try:
        life = worker.log_path.read_text(errors="replace").rsplit(RESTART_MARK, 1)[-1]
    except OSError:
        return False
    return worker.running and READY in life


async def test_workers_killed_while_holding_leases_lose_no_job(chaos: Chaos) -> None:
    env = settings_env(chaos.settings)
    workers = [
        ManagedProcess(
            f"worker-{i}", [sys.executable, "-m", "workers.generator"], chaos.log_dir / f"worker-{i}.log", env=env
        ).start()
        for i in range(2)
    ]
    messages: list[str] = []
    policy = RestartPolicy(frozenset(), Backoff(initial_s=0.2, max_s=2.0, healthy_after_s=30.0))
    supervisor = ProcessSupervisor(lambda: workers, policy, messages.append)
    stop = threading.Event()
    supervising = threading.Thread(target=supervisor.run, args=(stop, 0.05), daemon=True)
    supervising.start()
    jobs: list[str] = []
    finished: set[str] = set()
    background: list[asyncio.Task] = []

    async def watch_statuses() -> None:
        # What a client polling every job sees, in order.
        while True:
            for job_id in [j for j in jobs if j not in finished]:
                view = (await chaos.client.get(f"/v1/images/jobs/{job_id}", headers=bearer(chaos.key))).json()
                sequence = chaos.seen.setdefault(job_id, [])
                if not sequence or sequence[-1] != view["status"]:
                    sequence.append(view["status"])
                if GENERATION.is_terminal(GenerationStatus(view["status"])):
                    finished.add(job_id)
            # Between sweeps: each GET costs the API and moto CPU that the two workers need on a small machine
            # (a status missed in between is fine, forward_only allows for it).
            await asyncio.sleep(0.25)

    async def reconcile_often() -> None:
        # The stack runs it on a schedule; here every half second, so lapsed leases are found quickly.
        while True:
            await reconcile(chaos.context, utcnow())
            await asyncio.sleep(0.5)

    async def holder() -> ManagedProcess | None:
        """A worker that holds the lease of an unfinished job now, if any."""
        by_pid = {w.process.pid: w for w in workers if w.process is not None and w.running}
        for job_id in [j for j in jobs if j not in finished]:
            record = await chaos.context.jobs.get(job_id)
            if record and record.status == GenerationStatus.PROCESSING and record.leaseOwner:
                # A worker's id is host-pid-random: its pid says which process holds the lease.
                pid = int(record.leaseOwner.rsplit("-", 2)[-2])
                if pid in by_pid:
                    return by_pid[pid]
        return None

    try:
        await eventually(
            lambda: asyncio.to_thread(lambda: all(ready(w) for w in workers)), bool, 180, "both workers ready"
        )
        background = [asyncio.create_task(watch_statuses()), asyncio.create_task(reconcile_often())]
        for round_ in range(ROUNDS):
            for i in range(JOBS_PER_ROUND):
                response = await chaos.client.post(
                    "/v1/images/generate", json={**JOB, "seed": round_ * 100 + i}, headers=bearer(chaos.key)
                )
                assert response.status_code == 202, response.text
                jobs.append(response.json()["jobId"])
            victim = await eventually(holder, lambda w: w is not None, 60, "a worker holding a lease")
            assert victim is not None
            victim.kill()  # SIGKILL mid-job: no commit, no marker, no release of the lease
            if round_ < ROUNDS - 1:
                # The other one serves meanwhile; the next kill waits until this one is back.
                await eventually(
                    lambda v=victim: asyncio.to_thread(ready, v), bool, 120, f"{victim.name} restarted and ready"
                )

        try:
            await eventually(lambda: asyncio.sleep(0, len(finished)), lambda n: n == len(jobs), 90, "every job to end")
        except AssertionError as exc:
            stuck = [await chaos.context.jobs.get(j) for j in jobs if j not in finished]
            logs = "\n".join(f"{w.name}:\n{w.log_tail(15)}" for w in workers)
            raise AssertionError(f"{exc}\nunfinished: {stuck}\nsupervisor: {messages}\n{logs}") from exc
    finally:
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        stop.set()
        await asyncio.to_thread(supervising.join, 10)
        for worker in workers:
            worker.stop()

    assert len(jobs) == ROUNDS * JOBS_PER_ROUND
    restarts = [m for m in messages if "exited (killed by SIGKILL)" in m]
    assert len(restarts) == ROUNDS, messages
    reclaimed = 0
    for job_id in jobs:
        record = await chaos.context.jobs.get(job_id)
        assert record is not None and record.status == GenerationStatus.COMPLETED, (job_id, record)
        reclaimed += int(record.attempts or 0) > 1
        # Exactly one set of outputs: a killed attempt's partial uploads were overwritten, not added to.
        outputs = sorted(await chaos.context.store.list_keys(f"jobs/{job_id}/outputs/"))
        assert len(outputs) == OUTPUTS and outputs == sorted(record.outputs or []), (outputs, record.outputs)
        assert forward_only(chaos.seen[job_id]), (job_id, chaos.seen[job_id])
    # A kill can land after the worker wrote its result (the status moves a moment later, through the S3
    # notification), so not every kill costs an attempt; most do.
    assert reclaimed >= 1
