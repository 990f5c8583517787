"""aiokafka producer, consumer and admin factories, the one way the service publishes an event, and the one
way it dead-letters a record it cannot use."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from opentelemetry.trace import SpanKind

from events.envelope import CloudEvent, kafka_headers
from events.persistence import PublishFailed
from events.topics import DEAD_LETTERS
from infra.kafka_auth import sasl_kwargs
from infra.settings import Settings
from infra.tracing import current_trace_id, current_traceparent, mark_failed, span, trace_id_of

log = logging.getLogger(__name__)


def _common_kwargs(settings: Settings) -> dict[str, Any]:
    # On AWS, `settings` must come from `infra.kafka_auth.resolve_kafka_settings` (brokers and credentials by ARN).
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": settings.kafka_security_protocol,
    }
    kwargs.update(sasl_kwargs(settings))
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        kwargs["ssl_context"] = create_ssl_context()
    return kwargs


def admin_kwargs(settings: Settings) -> dict[str, Any]:
    """Arguments for AIOKafkaAdminClient."""
    return {**_common_kwargs(settings), "request_timeout_ms": 10_000}


def create_producer(settings: Settings) -> AIOKafkaProducer:
    """A producer that waits for every in-sync replica; idempotent where the broker supports it."""
    return AIOKafkaProducer(
        **_common_kwargs(settings),
        acks="all",
        enable_idempotence=settings.kafka_idempotence,
        linger_ms=0,
        request_timeout_ms=10_000,
    )


def create_consumer(settings: Settings, *topics: str, group_id: str, **overrides: Any) -> AIOKafkaConsumer:
    """A consumer-group member that commits by hand, only after a record's outcome is durable."""
    kwargs: dict[str, Any] = {
        **_common_kwargs(settings),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        # The session timeout bounds how long a dead member's partitions wait for another member.
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": settings.kafka_heartbeat_interval_ms,
        "max_poll_interval_ms": 60_000,
        "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
        **overrides,
    }
    if settings.kafka_group_instance_id and "group_instance_id" not in overrides:
        # Static membership: instance ids need only be unique within a group, so one per process will do.
        kwargs["group_instance_id"] = settings.kafka_group_instance_id
    return AIOKafkaConsumer(*topics, **kwargs)


class EventPublisher:
    """Publishes CloudEvents in structured mode, keyed so that one job's events stay in order."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    async def publish(self, topic: str, event: CloudEvent[Any], key: str | None = None) -> None:
        """Send one event and wait for the broker's acknowledgement; PublishFailed if the broker did not take it.

        The send is a PRODUCER span in the event's trace (under the current span when that one is in the same
        trace: the request's, the marker's), and the event sent names that span as its `traceparent`, so its
        consumer's span hangs under the send; an event without a trace is sent as it is.
        """
        parent = event.traceparent
        if parent is not None and trace_id_of(parent) == current_trace_id():
            parent = None  # the current span is in the event's trace and nearer: hang the send under it
        attributes = {
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.destination.name": topic,
            "messaging.message.id": event.id,
            "cloudevents.event_type": event.type,
            "lorafoundry.job_id": event.subject,
            "lorafoundry.tenant": event.tenantid,
        }
        with span(f"send {topic}", traceparent=parent, kind=SpanKind.PRODUCER, attributes=attributes) as current:
            if event.traceparent is not None:
                event = event.model_copy(update={"traceparent": current_traceparent() or event.traceparent})
            try:
                metadata = await self.producer.send_and_wait(
                    topic,
                    value=event.to_json_bytes(),
                    key=(key or event.subject).encode(),
                    headers=kafka_headers(),
                )
            except KafkaError as exc:
                mark_failed(current, exc)
                raise PublishFailed(f"{topic}: {exc}") from exc
            if hasattr(metadata, "partition") and hasattr(metadata, "offset"):
                current.set_attribute("messaging.destination.partition.id", str(metadata.partition))
                current.set_attribute("messaging.kafka.offset", int(metadata.offset))


# A reason is a validation message and can be long; a header that big would make the broker refuse the record.
_MAX_REASON_CHARS = 4000


class ReceivedRecord(Protocol):
    """A record as it was read from a topic: aiokafka's ConsumerRecord, or one record of a Lambda Kafka event
    decoded back to bytes."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes]]: ...


async def stop_consumer(consumer: AIOKafkaConsumer) -> None:
    """Stop a consumer, leaving its group and closing its connections.

    aiokafka's fetcher, closed while a fetch that timed out is backing off, re-raises that fetch's cancellation
    from `stop()` and skips closing the client (aiokafka 0.14: `Fetcher.close` awaits its cancelled tasks). That
    cancellation is not this task's: it is logged and the client closed; a real cancellation of the caller still
    propagates."""
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        log.warning("the consumer's fetcher raised a cancellation while closing; closing its client anyway")
        await consumer._client.close()


def dead_letter_headers(record: ReceivedRecord, reason: str) -> list[tuple[str, bytes]]:
    """The record's own headers plus why it was dead-lettered and where it was read from."""
    return [
        *list(record.headers or ()),
        ("dlq-reason", reason[:_MAX_REASON_CHARS].encode()),
        ("dlq-topic", record.topic.encode()),
        ("dlq-partition", str(record.partition).encode()),
        ("dlq-offset", str(record.offset).encode()),
    ]


async def dead_letter(producer: AIOKafkaProducer, record: ReceivedRecord, reason: str) -> None:
    """Copy a record that can never be used (not a CloudEvent, or not a valid one of its type) to the DLQ
    topic, key and value unchanged, and wait for the broker's acknowledgement.

    Raises PublishFailed if the broker did not take it: the caller must then not commit past the record, or it
    would be lost.
    """
    try:
        await producer.send_and_wait(
            DEAD_LETTERS, value=record.value, key=record.key, headers=dead_letter_headers(record, reason)
        )
    except KafkaError as exc:
        raise PublishFailed(f"{DEAD_LETTERS}: {exc}") from exc
