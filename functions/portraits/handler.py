"""Lambda handler fed by the lifecycle topic (an MSK / self-managed Kafka event source mapping).

The event is Lambda's Kafka batch: records grouped by "topic-partition", values base64-encoded. A record
that is not a lifecycle event is logged and skipped (it cannot become one by retrying); an error while
acting on one fails the invocation, and the event source retries the batch, which every step tolerates.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from events.lifecycle import JobLifecycle
from functions.lambda_runtime import AsyncLambda
from functions.portraits.flow import on_lifecycle
from infra.runtime import ServiceContext
from infra.settings import Settings, get_settings

log = logging.getLogger(__name__)


class KafkaRecord(BaseModel):
    """One record of a Lambda Kafka event."""

    model_config = ConfigDict(extra="allow")

    topic: str
    partition: int
    offset: int
    value: str | None = None  # base64

    def decoded_value(self) -> bytes:
        """The record's value bytes."""
        return base64.b64decode(self.value or "")


class KafkaEvent(BaseModel):
    """Lambda's event for a Kafka event source mapping (`aws:kafka` or `SelfManagedKafka`)."""

    model_config = ConfigDict(extra="allow")

    eventSource: str
    records: dict[str, list[KafkaRecord]]


async def process_kafka_event(context: ServiceContext, event: dict[str, Any]) -> None:
    """Act on every lifecycle event of the batch, in partition order."""
    batch = KafkaEvent.model_validate(event)
    for records in batch.records.values():
        for record in records:
            try:
                lifecycle = JobLifecycle.model_validate_json(record.decoded_value())
            except ValidationError as exc:
                log.warning("%s-%d@%d is not a lifecycle event: %s", record.topic, record.partition, record.offset, exc)
                continue
            await on_lifecycle(context, lifecycle)


class PortraitsLambda(AsyncLambda):
    """The portraits function."""

    def __init__(self, settings_factory: Callable[[], Settings] = get_settings) -> None:
        super().__init__(process_kafka_event, settings_factory)


handler = PortraitsLambda()
