"""The consumer loop every worker runs: validate, dead-letter, run off the loop, commit after.

Reliability rules it keeps (see docs/architecture.md):
- the offset is committed only after the handler returned, i.e. after the job's outcome is in S3;
- while a long job runs the partitions are paused and the loop keeps polling, so the member stays in its
  group and the record is not redelivered to another member in a loop;
- a record that cannot be parsed or validated goes to the DLQ topic with the reason and is committed, so it
  never blocks its partition; a handler failure (infrastructure) is retried from the same offset;
- a handler that gives its job back because the worker is stopping (`HandBack`) leaves the record uncommitted:
  whichever member owns the partition next reads it again;
- the loop calls `on_alive` while it polls and while a job runs, which the container's health check reads.

Each handled event gets a CONSUMER span in the trace the event carries, and the job's log context (job id,
tenant): both reach the handler's task, not threads it hands work to (see `infra.tracing.in_current_context`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError

from events.envelope import CloudEvent, EnvelopeError, decode_envelope, parse_event
from events.persistence import PublishFailed
from infra.kafka import dead_letter
from infra.observability import processing_event
from infra.tracing import mark_failed
from workers.worker_state import WorkerLifecycle, WorkerState

log = logging.getLogger(__name__)


class _Outcome(Enum):
    """What handling one record came to."""

    HANDLED = "handled"
    HANDED_BACK = "handed_back"
    FAILED = "failed"


class HandBack(Exception):
    """Raised by a handler that stops its job unfinished because the worker is stopping, after making the job
    claimable again: the loop leaves the record uncommitted and does not retry it, so the partition's next owner
    (another worker, once this one has left the group) takes the job over."""


@dataclass(frozen=True)
class Route:
    """Which model validates an event type and which coroutine handles it."""

    model: type[CloudEvent[Any]]
    handle: Callable[[CloudEvent[Any]], Awaitable[None]]


class ConsumerLoop:
    """Consumes one consumer group's records one at a time and commits each only after it is handled."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        routes: dict[str, Route],
        *,
        poll_timeout_ms: int = 500,
        keepalive_s: float = 1.0,
        retry_backoff_s: float = 2.0,
        name: str = "worker",
        on_alive: Callable[[], None] | None = None,
    ) -> None:
        self.consumer = consumer
        self.producer = producer
        self.routes = routes
        self.poll_timeout_ms = poll_timeout_ms
        self.keepalive_s = keepalive_s
        self.retry_backoff_s = retry_backoff_s
        self.on_alive = on_alive or (lambda: None)
        self.lifecycle = WorkerLifecycle(name)
        self.handled = 0
        self.dead_lettered = 0

    @property
    def state(self) -> WorkerState:
        """Where this worker is in its life: starting until `run`, then ready or busy, then stopping."""
        return self.lifecycle.state

    async def run(self, stop: asyncio.Event, on_ready: Callable[[ConsumerLoop], None] | None = None) -> None:
        """Consume until `stop` is set; the record in hand is finished first. `on_ready` is called once the
        loop is ready to take records. Ends in the stopping state, whatever ended it."""
        self.lifecycle.move(WorkerState.READY)  # refuses a loop that already ran, or one stopping
        try:
            if on_ready:
                on_ready(self)
            while not stop.is_set():
                self.on_alive()
                batch = await self.consumer.getmany(timeout_ms=self.poll_timeout_ms, max_records=1)
                for tp, records in batch.items():
                    for record in records:
                        await self._process(tp, record, stop)
        finally:
            # Always from ready: _process leaves busy (even when canceled) before anything reaches here.
            self.lifecycle.move(WorkerState.STOPPING)

    def stopped(self) -> None:
        """Record that the worker's clients are closed: nothing more will run."""
        self.lifecycle.move(WorkerState.STOPPED)

    async def _process(self, tp: TopicPartition, record: ConsumerRecord, stop: asyncio.Event) -> None:
        # Refused unless ready: one record at a time, and none before set-up ended or after a stop.
        self.lifecycle.move(WorkerState.BUSY)
        try:
            await self._handle(tp, record, stop)
        finally:
            self.lifecycle.move(WorkerState.READY)

    async def _handle(self, tp: TopicPartition, record: ConsumerRecord, stop: asyncio.Event) -> None:
        try:
            envelope = decode_envelope(record.value, record.headers)
            route = self.routes.get(str(envelope.get("type")))
            if route is None:
                raise EnvelopeError(f"no worker handles event type {envelope.get('type')!r} on {tp.topic}")
            event = parse_event(envelope, route.model, str(envelope["type"]))
        except EnvelopeError as exc:
            await self._dead_letter(tp, record, str(exc))
            await self._commit(tp, record)
            return

        outcome = await self._run_traced(tp, record, route, event)
        if outcome is _Outcome.FAILED:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.retry_backoff_s)
            return
        if outcome is _Outcome.HANDED_BACK:
            return
        self.handled += 1
        await self._commit(tp, record)

    async def _run_traced(
        self, tp: TopicPartition, record: ConsumerRecord, route: Route, event: CloudEvent[Any]
    ) -> _Outcome:
        """Handle one event inside its CONSUMER span (a child of the trace the event carries) and its job's log
        context, which the handler's task inherits; a failed or handed-back record is left to be read again."""
        with processing_event(tp.topic, tp.partition, record.offset, event) as current:
            try:
                await self._run_keeping_membership(route.handle(event))
            except HandBack:
                current.set_attribute("lorafoundry.outcome", "handed_back")
                log.info("%s@%s:%d handed back unfinished: left uncommitted", tp.topic, tp.partition, record.offset)
                if tp in self.consumer.assignment():
                    self.consumer.seek(tp, record.offset)
                return _Outcome.HANDED_BACK
            except Exception as exc:
                mark_failed(current, exc)
                log.exception(
                    "handling %s@%s:%d failed; retrying from the same offset", tp.topic, tp.partition, record.offset
                )
                if tp in self.consumer.assignment():  # else it moved: its new owner reads it from the commit
                    self.consumer.seek(tp, record.offset)
                return _Outcome.FAILED
            return _Outcome.HANDLED

    async def _run_keeping_membership(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        paused = self.consumer.assignment()
        self.consumer.pause(*paused)
        try:
            while not task.done():
                self.on_alive()
                await asyncio.wait({task}, timeout=self.keepalive_s)
                if task.done():
                    break
                # Polling (nothing is returned from paused partitions) tells the group we are alive.
                extra = await self.consumer.getmany(timeout_ms=0)
                for tp, records in extra.items():
                    # A rebalance may hand us new, unpaused partitions: leave their records for later.
                    self.consumer.seek(tp, records[0].offset)
                    self.consumer.pause(tp)
        finally:
            self.consumer.resume(*self.consumer.assignment())
        task.result()

    async def _commit(self, tp: TopicPartition, record: ConsumerRecord) -> None:
        try:
            await self.consumer.commit({tp: record.offset + 1})
        except (CommitFailedError, IllegalStateError):
            # The partition moved to another member meanwhile (during the group's rebalance, or already assigned
            # elsewhere, which aiokafka raises as IllegalStateError): it will see the job is done and skip it.
            log.warning("commit of %s:%d@%d lost to a rebalance", tp.topic, tp.partition, record.offset)

    async def _dead_letter(self, tp: TopicPartition, record: ConsumerRecord, reason: str) -> None:
        log.warning("dead-lettering %s:%d@%d: %s", tp.topic, tp.partition, record.offset, reason)
        try:
            await dead_letter(self.producer, record, reason)
        except PublishFailed:
            log.exception("could not dead-letter %s:%d@%d", tp.topic, tp.partition, record.offset)
            raise
        self.dead_lettered += 1
