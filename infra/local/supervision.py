"""What the embedded stack does when one of its components exits: plain decisions, no processes, no clock of
its own (tests drive it with a fake one).

A component that is not essential (a worker, a consumer, the poller, a scheduled function, the API) is
restarted after an exponential, capped backoff, so a crash loop does not spin the machine; the backoff starts
over once a component has stayed up `healthy_after_s`. An essential component (the storage, the broker) is
fatal: everything else depends on its state, which a restart would not bring back (Tansu and moto keep it in
memory), so the stack stops and says which one died.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backoff:
    """Delays between restarts of one component: `initial_s * factor**n`, at most `max_s`."""

    initial_s: float = 0.5
    factor: float = 2.0
    max_s: float = 30.0
    healthy_after_s: float = 60.0

    def delay(self, consecutive_failures: int) -> float:
        """The wait before restarting after the `consecutive_failures`-th failure in a row (1 is the first)."""
        return min(self.max_s, self.initial_s * self.factor ** max(0, consecutive_failures - 1))


def describe_exit(returncode: int | None) -> str:
    """`exit code 1`, `killed by SIGKILL`: how a process ended, in words."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


@dataclass(frozen=True)
class Restart:
    """Start the component again at `at` (the clock's time), its `attempt`-th restart in a row."""

    name: str
    reason: str
    delay_s: float
    at: float
    attempt: int


@dataclass(frozen=True)
class Fatal:
    """An essential component died: stop everything."""

    name: str
    reason: str


@dataclass
class _Record:
    started_at: float
    failures: int = 0  # consecutive: reset once the component has been healthy a while
    restarts: int = 0  # all time, for the output


@dataclass
class RestartPolicy:
    """Decides, for each exit, whether and when the component starts again."""

    essential: frozenset[str]
    backoff: Backoff = field(default_factory=Backoff)
    _records: dict[str, _Record] = field(default_factory=dict)

    def started(self, name: str, now: float) -> None:
        """Note that `name` (re)started at `now`."""
        record = self._records.get(name)
        if record is None:
            self._records[name] = _Record(started_at=now)
        else:
            record.started_at = now

    def exited(self, name: str, returncode: int | None, now: float) -> Restart | Fatal:
        """`name` exited with `returncode` at `now`: restart it (when) or stop everything."""
        reason = describe_exit(returncode)
        if name in self.essential:
            return Fatal(name, reason)
        record = self._records.setdefault(name, _Record(started_at=now))
        if now - record.started_at >= self.backoff.healthy_after_s:
            record.failures = 0  # it ran well for a while: this is a new incident, not a crash loop
        record.failures += 1
        record.restarts += 1
        delay = self.backoff.delay(record.failures)
        return Restart(name, reason, delay, now + delay, record.failures)

    def restarts(self, name: str) -> int:
        """How many times `name` has been restarted."""
        record = self._records.get(name)
        return record.restarts if record else 0
