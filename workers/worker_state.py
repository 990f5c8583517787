"""A worker's life as a transition table (cog's model: set up once, then serve many, one at a time).

starting -> ready -> busy -> ready ... -> stopping -> stopped. A move the table does not allow raises, so the
consumer loop cannot take a record before set-up is over, take a second one while busy, or stop in the middle
of a job (a stop request waits for the job in hand to end).
"""

from __future__ import annotations

import logging
from enum import StrEnum

from events.states import IllegalTransition, StateMachine

log = logging.getLogger(__name__)


class WorkerState(StrEnum):
    """Where a worker is in its life."""

    STARTING = "starting"
    READY = "ready"
    BUSY = "busy"
    STOPPING = "stopping"
    STOPPED = "stopped"


_W = WorkerState
WORKER = StateMachine(
    {
        # starting -> stopping: a stop requested before set-up was over.
        _W.STARTING: frozenset({_W.READY, _W.STOPPING}),
        _W.READY: frozenset({_W.BUSY, _W.STOPPING}),
        # busy -> ready only: a stop is honoured once the job in hand has ended.
        _W.BUSY: frozenset({_W.READY}),
        _W.STOPPING: frozenset({_W.STOPPED}),
        _W.STOPPED: frozenset(),
    },
    initial=_W.STARTING,
)

# Moves made per record are logged at debug level; the others once per life, at info level.
_PER_RECORD = frozenset({(_W.READY, _W.BUSY), (_W.BUSY, _W.READY)})


class WorkerLifecycle:
    """The current state of one worker; `move` is the only way to change it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._state = WorkerState(WORKER.initial)

    @property
    def state(self) -> WorkerState:
        """The state the worker is in now."""
        return self._state

    def move(self, target: WorkerState) -> None:
        """Change state, raising IllegalTransition when the table does not allow the move."""
        current = self._state
        WORKER.check(current, target)
        self._state = target
        level = logging.DEBUG if (current, target) in _PER_RECORD else logging.INFO
        log.log(level, "%s: %s -> %s", self.name, current.value, target.value)

    def require(self, expected: WorkerState) -> None:
        """Raise IllegalTransition unless the worker is in `expected` (e.g. ready, before taking a record)."""
        if self._state is not expected:
            raise IllegalTransition(f"{self.name} is {self._state.value}, not {expected.value}")


__all__ = ["WORKER", "IllegalTransition", "WorkerLifecycle", "WorkerState"]
