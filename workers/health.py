"""A worker's liveness, as a container health check reads it: `python -m workers.health` exits 0 when the
worker's loop touched its heartbeat file (LF_WORKER_HEARTBEAT_PATH) within LF_WORKER_HEARTBEAT_MAX_AGE_SECONDS,
1 otherwise.

The loop beats while it polls and while a job runs (it keeps polling then, to stay in its consumer group), and
the set-up beats while it warms the base model; a loop that hangs, or a process that died, stops beating. The
check imports no model library, so it costs ECS a fraction of a second.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from infra.settings import Settings

# Beats closer together than this touch the file once: the loop may poll many times a second.
MIN_BEAT_INTERVAL_S = 1.0


class Heartbeat:
    """Touches a file while the worker is alive; nothing without a path (the embedded stack needs no check)."""

    def __init__(
        self,
        path: Path | None,
        *,
        min_interval_s: float = MIN_BEAT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.min_interval_s = min_interval_s
        self.clock = clock
        self._last: float | None = None

    def beat(self) -> None:
        """Record that the worker is alive now (at most once per `min_interval_s`)."""
        if self.path is None:
            return
        now = self.clock()
        if self._last is not None and now - self._last < self.min_interval_s:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()
        self._last = now


def heartbeat_age(path: Path, now: float | None = None) -> float | None:
    """Seconds since the heartbeat file was last touched; None when there is none."""
    try:
        modified = path.stat().st_mtime
    except FileNotFoundError:
        return None
    return (time.time() if now is None else now) - modified


def check(settings: Settings, now: float | None = None) -> tuple[bool, str]:
    """Whether the worker is alive, and why (the line the health check prints)."""
    path = settings.worker_heartbeat_path
    if path is None:
        return False, "unhealthy: LF_WORKER_HEARTBEAT_PATH is not set, so no heartbeat is written"
    age = heartbeat_age(path, now)
    if age is None:
        return False, f"unhealthy: no heartbeat at {path} yet"
    limit = settings.worker_heartbeat_max_age_seconds
    if age > limit:
        return False, f"unhealthy: last heartbeat {age:.0f} s ago (limit {limit:.0f} s)"
    return True, f"healthy: last heartbeat {age:.1f} s ago"


def main(settings: Settings | None = None) -> int:
    """The health check's exit status: 0 healthy, 1 not."""
    healthy, line = check(settings or Settings())
    print(line)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
