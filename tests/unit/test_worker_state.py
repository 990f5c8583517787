"""A worker's life: the transition table, and the consumer loop moving through it (fake consumer, no broker)."""

from __future__ import annotations

import asyncio
import itertools
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from pydantic import BaseModel

from events.envelope import CloudEvent, kafka_headers
from events.states import IllegalTransition
from workers.consumer import ConsumerLoop, Route
from workers.worker_state import WORKER, WorkerLifecycle, WorkerState

W = WorkerState
ALLOWED = {
    (W.STARTING, W.READY),
    (W.STARTING, W.STOPPING),
    (W.READY, W.BUSY),
    (W.READY, W.STOPPING),
    (W.BUSY, W.READY),
    (W.STOPPING, W.STOPPED),
}
TP = TopicPartition("test.pings", 0)


class PingData(BaseModel):
    n: int


class Ping(CloudEvent[PingData]):
    pass


def ping_record(offset: int, n: int = 1) -> SimpleNamespace:
    value = Ping(type="test.ping", subject=f"ping-{n}", tenantid="tenant", data=PingData(n=n)).to_json_bytes()
    return SimpleNamespace(offset=offset, value=value, headers=kafka_headers(), key=None)


class FakeConsumer:
    """Hands out its records one poll at a time; the keep-alive polls (no max_records) get nothing."""

    def __init__(self, records: list[SimpleNamespace]) -> None:
        self.records = list(records)
        self.commits: list[dict[TopicPartition, int]] = []
        self.seeks: list[int] = []

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, list[Any]]:
        await asyncio.sleep(0)
        if max_records is None or not self.records:
            return {}
        return {TP: [self.records.pop(0)]}

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def pause(self, *partitions: TopicPartition) -> None:
        pass

    def resume(self, *partitions: TopicPartition) -> None:
        pass

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append(offset)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(offsets)


def loop_with(consumer: FakeConsumer, handle: Any) -> ConsumerLoop:
    return ConsumerLoop(
        consumer,  # type: ignore[arg-type]
        producer=None,  # type: ignore[arg-type]
        routes={"test.ping": Route(Ping, handle)},
        poll_timeout_ms=0,
        keepalive_s=0.01,
        retry_backoff_s=0,
        name="test worker",
    )


@pytest.mark.parametrize("current, target", list(itertools.product(W, W)))
def test_transition_table(current: W, target: W) -> None:
    assert WORKER.can_transition(current, target) == ((current, target) in ALLOWED)
    lifecycle = WorkerLifecycle("w")
    lifecycle._state = current
    if (current, target) in ALLOWED:
        lifecycle.move(target)
        assert lifecycle.state is target
    else:
        with pytest.raises(IllegalTransition, match=f"{current.value} to {target.value}"):
            lifecycle.move(target)
        assert lifecycle.state is current


def test_a_worker_starts_starting_and_ends_stopped() -> None:
    assert WorkerLifecycle("w").state is W.STARTING
    assert WORKER.terminal == {W.STOPPED}


async def test_the_loop_is_busy_while_handling_and_a_stop_waits_for_the_job() -> None:
    stop = asyncio.Event()
    seen: list[tuple[str, W]] = []
    consumer = FakeConsumer([ping_record(7)])
    loop: ConsumerLoop

    async def handle(event: Ping) -> None:
        seen.append(("handling", loop.state))
        stop.set()  # asked to stop while busy: the job still runs to its end
        await asyncio.sleep(0.03)
        seen.append(("finishing", loop.state))

    loop = loop_with(consumer, handle)
    assert loop.state is W.STARTING
    await asyncio.wait_for(loop.run(stop, on_ready=lambda ready: seen.append(("ready", ready.state))), 5)

    assert seen == [("ready", W.READY), ("handling", W.BUSY), ("finishing", W.BUSY)]
    assert loop.handled == 1 and consumer.commits == [{TP: 8}]
    assert loop.state is W.STOPPING
    loop.stopped()
    assert loop.state is W.STOPPED


async def test_a_loop_refuses_records_before_it_is_ready_and_after_it_stopped() -> None:
    handled: list[int] = []

    async def handle(event: Ping) -> None:
        handled.append(event.data.n)

    loop = loop_with(FakeConsumer([]), handle)
    with pytest.raises(IllegalTransition):
        await loop._process(TP, ping_record(0), asyncio.Event())  # type: ignore[arg-type]
    stop = asyncio.Event()
    stop.set()
    await loop.run(stop)
    with pytest.raises(IllegalTransition):
        await loop._process(TP, ping_record(0), asyncio.Event())  # type: ignore[arg-type]
    with pytest.raises(IllegalTransition):
        await loop.run(asyncio.Event())  # a loop runs once
    assert handled == [] and loop.state is W.STOPPING


async def test_a_failed_handler_returns_the_loop_to_ready_without_a_commit() -> None:
    stop = asyncio.Event()
    consumer = FakeConsumer([ping_record(3)])
    states: list[W] = []
    loop: ConsumerLoop

    async def handle(event: Ping) -> None:
        states.append(loop.state)
        stop.set()
        raise RuntimeError("the store is down")

    loop = loop_with(consumer, handle)
    await asyncio.wait_for(loop.run(stop), 5)
    assert states == [W.BUSY]
    assert consumer.commits == [] and consumer.seeks == [3] and loop.handled == 0
    assert loop.state is W.STOPPING
