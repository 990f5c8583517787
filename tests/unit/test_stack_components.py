"""The embedded stack's start order: each component ready before the next starts, unless it overlaps it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from infra.local.components import Component, start_in_order


@dataclass
class FakeProcess:
    """Stands in for a ManagedProcess: readiness is asked once and recorded."""

    name: str
    journal: list[str]

    def wait_ready(self, check: Callable[[], bool], timeout_s: float) -> None:
        assert check(), f"{self.name} was not ready"
        self.journal.append(f"ready {self.name}")


def component(name: str, journal: list[str], *, overlaps_next: bool = False, processes: int = 1) -> Component:
    def start() -> list[FakeProcess]:
        journal.append(f"start {name}")
        return [FakeProcess(f"{name}-{i}", journal) for i in range(processes)]

    return Component(name, start=start, address=lambda: f"{name}-address", overlaps_next=overlaps_next)  # type: ignore[arg-type]


def test_components_start_in_order_each_ready_before_the_next_unless_it_overlaps() -> None:
    journal: list[str] = []
    reported: list[tuple[str, str]] = []
    components = [
        component("store", journal),
        component("setup", journal, processes=0),
        component("workers", journal, overlaps_next=True, processes=2),
        component("trainer", journal),
    ]
    timings = start_in_order(components, lambda name, address, _ms: reported.append((name, address)))

    assert journal == [
        "start store",
        "ready store-0",
        "start setup",
        "start workers",
        "start trainer",  # overlaps the workers' start-up
        "ready workers-0",
        "ready workers-1",
        "ready trainer-0",
    ]
    assert reported == [(name, f"{name}-address") for name in ("store", "setup", "workers", "trainer")]
    assert list(timings) == ["store", "setup", "workers", "trainer"]
    assert all(ms >= 0 for ms in timings.values())
