"""Lambda's event for a Kafka event source mapping (MSK or self-managed Kafka), typed, and the lifecycle
events in it: shared by every function the lifecycle topic feeds.

Records are decoded by the envelope's own decoder, as the workers decode theirs (structured or binary mode),
and a record that is not a valid lifecycle event is dead-lettered the way the workers do it: retrying
cannot make it one, and skipping it silently would lose it.
"""

from __future__ import annotations

import base64
import logging
from typing import Any, cast

from aiokafka import AIOKafkaProducer
from pydantic import BaseModel, ConfigDict

from events.envelope import EnvelopeError, decode_envelope, parse_event
from events.lifecycle import LIFECYCLE_TYPES, JobLifecycle
from infra.kafka import dead_letter

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


async def lifecycle_events(producer: AIOKafkaProducer, event: dict[str, Any]) -> list[JobLifecycle]:
    """The batch's lifecycle events in partition order, once every record that is not one is on the DLQ topic.

    Raises PublishFailed if a record could not be dead-lettered: the invocation fails and the event source
    retries the batch, so nothing is lost (a record dead-lettered before is then dead-lettered again, as the
    workers' redelivered records are; its `dlq-topic`/`dlq-partition`/`dlq-offset` show the copies are one record).
    """
    batch = KafkaEvent.model_validate(event)
    found: list[JobLifecycle] = []
    for records in batch.records.values():
        for lambda_record in records:
            record = ReceivedKafkaRecord.of(lambda_record)
            try:
                found.append(parse_lifecycle(record))
            except EnvelopeError as exc:
                log.warning("dead-lettering %s:%d@%d: %s", record.topic, record.partition, record.offset, exc)
                await dead_letter(producer, record, str(exc))
    return found
