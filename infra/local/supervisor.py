"""Keeps the embedded stack's components running: watches the processes, asks a `RestartPolicy` what to do
when one exits, restarts it when its backoff is over, and reports each step in words.

The decisions live in `infra.local.supervision` (plain code, tested on a fake clock); this module is the
process plumbing around them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from infra.local.processes import ManagedProcess
from infra.local.supervision import Fatal, Restart, RestartPolicy


class ProcessSupervisor:
    """Watches `processes()` and restarts what exits, per `policy`; `step()` is one look, `run()` loops."""

    def __init__(
        self,
        processes: Callable[[], list[ManagedProcess]],
        policy: RestartPolicy,
        report: Callable[[str], None] = lambda _: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.processes = processes
        self.policy = policy
        self.report = report
        self.clock = clock
        self.pending: dict[str, Restart] = {}
        now = clock()
        for process in processes():
            policy.started(process.name, now)

    def step(self) -> Fatal | None:
        """Notice exits and start what is due; the fatal exit, if one happened (nothing is restarted then)."""
        now = self.clock()
        by_name = {process.name: process for process in self.processes()}
        for name, process in by_name.items():
            if name in self.pending or process.process is None or process.running:
                continue
            decision = self.policy.exited(name, process.process.returncode, now)
            if isinstance(decision, Fatal):
                return decision
            self.pending[name] = decision
            self.report(
                f"{name} exited ({decision.reason}); restarting in {decision.delay_s:.1f}s"
                f" (restart {self.policy.restarts(name)}, {decision.attempt} in a row)"
            )
        for name, restart in list(self.pending.items()):
            if restart.at > now:
                continue
            del self.pending[name]
            process = by_name.get(name)
            if process is None:
                continue  # the stack is stopping
            self._restart(process, restart)
        return None

    def _restart(self, process: ManagedProcess, restart: Restart) -> None:
        process.stop()  # reaps it and anything it left in its process group
        # A line in its log, so that whoever reads it sees where one life ended and the next began.
        with process.log_path.open("a") as log:
            log.write(f"--- lorafoundry supervisor: {process.name} {restart.reason}; restarted ---\n")
        process.start()
        self.policy.started(process.name, self.clock())
        pid = process.process.pid if process.process else "?"
        self.report(f"{process.name} restarted (pid {pid}; its last run ended: {restart.reason})")

    def run(self, stop: threading.Event, interval_s: float = 0.2) -> Fatal | None:
        """Supervise until `stop` is set (None) or an essential component dies (its Fatal)."""
        while not stop.wait(interval_s):
            fatal = self.step()
            if fatal is not None:
                return fatal
        return None
