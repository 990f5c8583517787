"""Lambda's event for a Kafka event source mapping (MSK or self-managed Kafka), typed, and the lifecycle
events in it: shared by every function the lifecycle topic feeds.

Records are decoded by the envelope's own decoder, as the workers decode theirs (structured or binary mode),
and a record that is not a valid lifecycle event is dead-lettered the way the workers do it: retrying
cannot make it one, and skipping it silently would lose it.

A batch is answered with Lambda's partial batch response (the event source mapping has
`FunctionResponseTypes: ["ReportBatchItemFailures"]`): Lambda resumes each reported topic-partition from the
reported offset, so one record that fails replays only its own partition from itself, not the whole batch.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiokafka import AIOKafkaProducer
from pydantic import BaseModel, ConfigDict

from events.envelope import EnvelopeError, decode_envelope, parse_event
from events.lifecycle import LIFECYCLE_TYPES, JobLifecycle
from infra.kafka import dead_letter
from infra.observability import processing_event

log = logging.getLogger(__name__)


class KafkaRecord(BaseModel):
    """One record of a Lambda Kafka event; key, value and header values are base64 / byte lists there."""

    model_config = ConfigDict(extra="allow")

    topic: str
    partition: int
    offset: int
    key: str | None = None  # base64
    value: str | None = None  # base64
    headers: list[dict[str, list[int]]] = []  # Lambda's form: [{"name": [byte, ...]}, ...]

    def decoded_value(self) -> bytes:
        """The record's value bytes."""
        return base64.b64decode(self.value or "")


class ReceivedKafkaRecord(BaseModel):
    """A Lambda Kafka record decoded back to what the broker holds (as aiokafka's ConsumerRecord has it)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    @classmethod
    def of(cls, record: KafkaRecord) -> ReceivedKafkaRecord:
        """Decode one record of Lambda's event."""
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=base64.b64decode(record.key) if record.key is not None else None,
            value=base64.b64decode(record.value) if record.value is not None else None,
            headers=[(name, bytes(value)) for header in record.headers for name, value in header.items()],
        )


class KafkaEvent(BaseModel):
    """Lambda's event for a Kafka event source mapping (`aws:kafka` or `SelfManagedKafka`)."""

    model_config = ConfigDict(extra="allow")

    eventSource: str
    records: dict[str, list[KafkaRecord]]


def parse_lifecycle(record: ReceivedKafkaRecord) -> JobLifecycle:
    """The lifecycle event a record holds; EnvelopeError, with the reason, if it holds none."""
    envelope = decode_envelope(record.value, record.headers)
    event_type = envelope.get("type")
    if event_type not in LIFECYCLE_TYPES:
        raise EnvelopeError(f"unexpected event type {event_type!r} on {record.topic}, expected a lifecycle event")
    return cast(JobLifecycle, parse_event(envelope, JobLifecycle, str(event_type)))


LifecycleAction = Callable[[JobLifecycle], Awaitable[None]]


def item_failure(record: ReceivedKafkaRecord) -> dict[str, Any]:
    """The partial batch response's entry that makes Lambda resume `record`'s partition from `record`."""
    return {"itemIdentifier": {"partition": f"{record.topic}-{record.partition}", "offset": record.offset}}


async def handle_record(producer: AIOKafkaProducer, record: ReceivedKafkaRecord, act: LifecycleAction) -> bool:
    """Act on the record's lifecycle event, or dead-letter it if it holds none; whether it was an event. The action
    runs in a CONSUMER span of the job's trace (the event's `traceparent`) and the job's log context.

    Raises whatever `act` raises, and PublishFailed if the record could not be dead-lettered.
    """
    try:
        lifecycle = parse_lifecycle(record)
    except EnvelopeError as exc:
        log.warning("dead-lettering %s:%d@%d: %s", record.topic, record.partition, record.offset, exc)
        await dead_letter(producer, record, str(exc))
        return False
    with processing_event(record.topic, record.partition, record.offset, lifecycle):
        await act(lifecycle)
    return True


async def each_lifecycle_event(
    producer: AIOKafkaProducer, event: dict[str, Any], act: LifecycleAction
) -> dict[str, Any]:
    """Run `act` on every lifecycle event of Lambda's Kafka batch, record by record in each partition's order, and
    answer with the partial batch response.

    In a partition, the first record that fails (its action raised, or it could not be dead-lettered) is reported
    and the partition's later records are left alone: Lambda redelivers the partition from that record, so no
    record is skipped and none is acted on out of order. Other partitions go on. A record handled before a failure
    may be handled again on a redelivery of its batch elsewhere; every action tolerates that (and a record
    dead-lettered twice shows, by its `dlq-topic`/`dlq-partition`/`dlq-offset`, that the copies are one record).
    """
    batch = KafkaEvent.model_validate(event)
    failures: list[dict[str, Any]] = []
    handled = 0
    for records in batch.records.values():
        for lambda_record in sorted(records, key=lambda r: r.offset):
            record = ReceivedKafkaRecord.of(lambda_record)
            try:
                handled += await handle_record(producer, record, act)
            except Exception:
                # Any error: this record must come again, and so must everything after it in its partition.
                log.exception(
                    "%s:%d@%d failed; its partition resumes from it", record.topic, record.partition, record.offset
                )
                failures.append(item_failure(record))
                break
    log.info("lifecycle batch: %d events handled, %d partitions to resume", handled, len(failures))
    return {"batchItemFailures": failures}
