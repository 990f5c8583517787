"""What every process does first: its logging and its tracer, from the settings."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from opentelemetry.trace import Span, SpanKind

from infra.logs import configure_logging, job_log_context
from infra.settings import Settings
from infra.tracing import configure_tracing, span


def configure_process(settings: Settings, service: str) -> None:
    """Logging (JSON by default) and tracing (OTLP export when configured) for a process named `service`."""
    configure_logging(settings, service)
    configure_tracing(settings, service)


def service_for_handler(dotted_path: str) -> str:
    """The service name of a process that runs the Lambda handler at `dotted_path` (the local event sources):
    `functions.s3_events.handler.handler` -> `lorafoundry-s3-events`, as the function is named on AWS."""
    parts = dotted_path.split(".")
    function = parts[1] if len(parts) > 2 and parts[0] == "functions" else parts[0]
    return f"lorafoundry-{function.replace('_', '-')}"


@contextlib.contextmanager
def processing_event(topic: str, partition: int, offset: int, event: Any) -> Iterator[Span]:
    """The CONSUMER span of one Kafka record's CloudEvent (a child of the trace the event carries) and its job's log
    context, for the block: what every consumer of our topics (the workers, the Lambda functions) handles in."""
    attributes = {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.destination.name": topic,
        "messaging.destination.partition.id": str(partition),
        "messaging.kafka.offset": offset,
        "messaging.message.id": event.id,
        "cloudevents.event_type": event.type,
        "lorafoundry.job_id": event.subject,
        "lorafoundry.tenant": event.tenantid,
    }
    with (
        job_log_context(event.subject, event.tenantid),
        span(
            f"process {topic}", traceparent=event.traceparent, kind=SpanKind.CONSUMER, attributes=attributes
        ) as current,
    ):
        yield current
