"""A worker's registry record: the job in hand comes from the event being handled, the expiry is three intervals
ahead, and a table that does not answer delays neither the worker's start nor its stop."""

from __future__ import annotations

import asyncio

from events.generation import GenerationRequested
from events.states import WorkerKind
from workers.consumer import Route
from workers.registration import EXPIRY_INTERVALS, CurrentJob, WorkerRegistration


class Event:
    subject = "job_abc"


class MemoryWorkers:
    """The workers table in memory; `hang` makes every call wait forever (a table that does not answer)."""

    def __init__(self, hang: bool = False) -> None:
        self.hang = hang
        self.records: dict[str, object] = {}
        self.written = asyncio.Event()

    async def put(self, record) -> None:
        if self.hang:
            await asyncio.Event().wait()
        self.records[record.workerId] = record
        self.written.set()

    async def delete(self, worker_id: str) -> None:
        if self.hang:
            await asyncio.Event().wait()
        self.records.pop(worker_id, None)


def registration(repository, current: CurrentJob, interval_s: float = 10.0) -> WorkerRegistration:
    return WorkerRegistration(
        repository,  # type: ignore[arg-type]
        worker_id="w-1",
        kind=WorkerKind.GENERATOR,
        group="generators",
        interval_s=interval_s,
        state=lambda: "ready",
        current_job=current,
        clock=lambda: 1000.0,
    )


async def test_the_job_in_hand_is_the_handled_events_subject() -> None:
    current = CurrentJob()
    seen: list[str | None] = []

    async def handle(event) -> None:
        seen.append(current.job_id)

    routes = current.tracking({"t": Route(GenerationRequested, handle)})
    await routes["t"].handle(Event())
    assert seen == ["job_abc"]
    assert current.job_id is None  # between jobs


async def test_the_record_expires_three_intervals_ahead() -> None:
    current = CurrentJob()
    current.job_id = "job_1"
    record = registration(MemoryWorkers(), current, interval_s=10).record()
    assert record.expiresAt == 1000.0 + EXPIRY_INTERVALS * 10
    assert (record.workerId, record.kind, record.state, record.jobId) == ("w-1", WorkerKind.GENERATOR, "ready", "job_1")


async def test_kept_writes_then_deletes() -> None:
    table = MemoryWorkers()
    async with registration(table, CurrentJob()).kept():
        await asyncio.wait_for(table.written.wait(), 5)
        assert "w-1" in table.records
    assert table.records == {}


async def test_a_table_that_does_not_answer_blocks_nothing(monkeypatch) -> None:
    monkeypatch.setattr("workers.registration.STOP_TIMEOUT_S", 0.1)
    entered = False
    async with asyncio.timeout(5):
        async with registration(MemoryWorkers(hang=True), CurrentJob()).kept():
            entered = True
    assert entered
