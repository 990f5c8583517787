"""How the embedded stack starts: a list of components, each with its start and its readiness check, started
in order, each ready before the next starts unless it says the next may overlap it."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from infra.local.processes import ManagedProcess

# on_ready(component, address, milliseconds since its start)
OnReady = Callable[[str, str, float], None]


def no_check(_process: ManagedProcess) -> bool:
    """The readiness of a component whose start returns only once it is ready (or that runs no process)."""
    return True


@dataclass(frozen=True)
class Component:
    """One part of the stack.

    `start` launches the component's processes and returns them (none for a one-shot step such as the
    bootstrap, which is done when `start` returns). The component is ready once `ready(process)` holds for
    each of them, within `timeout_s`; a process that exits meanwhile fails the start at once. `address` says
    where it can be reached, once started. With `overlaps_next`, the next component starts before this one is
    ready (for components whose start-ups are slow and independent, such as the workers importing torch); the
    readiness of both is then waited for in order, each timed from the start of the first.
    """

    name: str
    start: Callable[[], Sequence[ManagedProcess]]
    address: Callable[[], str]
    ready: Callable[[ManagedProcess], bool] = no_check
    timeout_s: float = 60.0
    overlaps_next: bool = False


def _overlapping_groups(components: Sequence[Component]) -> list[list[Component]]:
    groups: list[list[Component]] = []
    for component in components:
        if groups and groups[-1][-1].overlaps_next:
            groups[-1].append(component)
        else:
            groups.append([component])
    return groups


def start_in_order(components: Sequence[Component], on_ready: OnReady) -> dict[str, float]:
    """Start every component in order, waiting for each to be ready; returns each one's start-up time in
    milliseconds by name, having reported each with `on_ready` as it became ready.

    Raises what a component's start raised, ProcessDied if a process exited during its start-up, TimeoutError
    if one was not ready in time; what was started stays started, for the caller to stop.
    """
    timings: dict[str, float] = {}
    for group in _overlapping_groups(components):
        started = time.perf_counter()
        launched = [(component, component.start()) for component in group]
        for component, processes in launched:
            for process in processes:
                process.wait_ready(lambda p=process, c=component: c.ready(p), component.timeout_s)
            timings[component.name] = round((time.perf_counter() - started) * 1000, 1)
            on_ready(component.name, component.address(), timings[component.name])
    return timings
