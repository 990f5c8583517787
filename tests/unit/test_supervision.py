"""The embedded stack's supervisor: restart decisions on a fake clock, and the plumbing on real processes."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import pytest

from infra.local.processes import ManagedProcess, wait_until
from infra.local.supervision import Backoff, Fatal, Restart, RestartPolicy, describe_exit
from infra.local.supervisor import ProcessSupervisor
from tests.support import FakeClock

BACKOFF = Backoff(initial_s=1.0, factor=2.0, max_s=8.0, healthy_after_s=60.0)


def test_exits_are_described_in_words() -> None:
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert describe_exit(-signal.SIGTERM) == "killed by SIGTERM"
    assert describe_exit(1) == "exit code 1"
    assert describe_exit(0) == "exit code 0"


def test_storage_or_broker_dying_is_fatal() -> None:
    policy = RestartPolicy(essential=frozenset({"moto", "tansu"}), backoff=BACKOFF)
    policy.started("tansu", 0.0)
    assert policy.exited("tansu", -signal.SIGKILL, 5.0) == Fatal("tansu", "killed by SIGKILL")
    assert policy.exited("moto", 1, 5.0) == Fatal("moto", "exit code 1")


def test_a_crash_loop_backs_off_exponentially_up_to_the_cap() -> None:
    policy = RestartPolicy(essential=frozenset({"tansu"}), backoff=BACKOFF)
    now = 0.0
    policy.started("worker-0", now)
    delays = []
    for _ in range(6):
        now += 2.0  # dies two seconds after each start: not healthy long enough to reset
        decision = policy.exited("worker-0", -signal.SIGKILL, now)
        assert isinstance(decision, Restart) and decision.reason == "killed by SIGKILL"
        assert decision.at == now + decision.delay_s
        delays.append(decision.delay_s)
        now = decision.at
        policy.started("worker-0", now)
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    assert policy.restarts("worker-0") == 6


def test_the_backoff_starts_over_after_a_healthy_run() -> None:
    policy = RestartPolicy(essential=frozenset(), backoff=BACKOFF)
    policy.started("trainer", 0.0)
    for now in (1.0, 3.0, 8.0):
        decision = policy.exited("trainer", 1, now)
        assert isinstance(decision, Restart)
        policy.started("trainer", decision.at)
    assert decision.attempt == 3 and decision.delay_s == 4.0
    # Up for a minute since its last start: the next crash is a new incident.
    fresh = policy.exited("trainer", -signal.SIGKILL, decision.at + 60.0)
    assert isinstance(fresh, Restart) and fresh.attempt == 1 and fresh.delay_s == 1.0
    assert policy.restarts("trainer") == 4


def test_components_are_counted_apart() -> None:
    policy = RestartPolicy(essential=frozenset(), backoff=BACKOFF)
    for name in ("worker-0", "worker-1"):
        policy.started(name, 0.0)
    first = policy.exited("worker-0", 1, 1.0)
    assert isinstance(first, Restart) and first.delay_s == 1.0
    second = policy.exited("worker-1", 1, 1.5)
    assert isinstance(second, Restart) and second.delay_s == 1.0 and second.attempt == 1


def _sleeper(name: str, tmp_path: Path) -> ManagedProcess:
    argv = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(120)"]
    return ManagedProcess(name, argv, tmp_path / f"{name}.log").start()


def test_the_supervisor_restarts_a_killed_process_when_its_backoff_is_over(tmp_path: Path) -> None:
    clock = FakeClock()
    processes = [_sleeper("worker-0", tmp_path), _sleeper("tansu", tmp_path)]
    messages: list[str] = []
    policy = RestartPolicy(essential=frozenset({"tansu"}), backoff=BACKOFF)
    supervisor = ProcessSupervisor(lambda: processes, policy, messages.append, clock)
    try:
        worker, broker = processes
        first_pid = worker.process.pid if worker.process else 0
        worker.kill()
        assert supervisor.step() is None
        assert messages == ["worker-0 exited (killed by SIGKILL); restarting in 1.0s (restart 1, 1 in a row)"]
        assert not worker.running  # not before its backoff is over
        clock.now += 1.0
        assert supervisor.step() is None
        assert worker.running and worker.process is not None and worker.process.pid != first_pid
        assert messages[-1].startswith("worker-0 restarted (pid ") and "killed by SIGKILL" in messages[-1]
        wait_until(lambda: worker.log_path.read_text().count("up") == 2, 30, "the second run's output")
        assert "lorafoundry supervisor: worker-0 killed by SIGKILL; restarted" in worker.log_path.read_text()

        broker.kill()
        fatal = supervisor.step()
        assert fatal == Fatal("tansu", "killed by SIGKILL")
        assert not broker.running  # an essential component is not restarted
    finally:
        for process in processes:
            process.stop()


@pytest.mark.parametrize("code", [0, 3])
def test_an_exit_of_its_own_is_restarted_too(tmp_path: Path, code: int) -> None:
    clock = FakeClock()
    process = ManagedProcess("poller", [sys.executable, "-c", f"raise SystemExit({code})"], tmp_path / "p.log")
    process.start()
    messages: list[str] = []
    supervisor = ProcessSupervisor(lambda: [process], RestartPolicy(frozenset(), BACKOFF), messages.append, clock)
    try:
        assert process.process is not None
        process.process.wait(30)
        assert supervisor.step() is None
        assert messages == [f"poller exited (exit code {code}); restarting in 1.0s (restart 1, 1 in a row)"]
    finally:
        process.stop()
