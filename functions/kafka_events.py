"""Lambda's event for a Kafka event source mapping (MSK or self-managed Kafka), typed, and the lifecycle
events in it: shared by every function the lifecycle topic feeds."""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from events.lifecycle import JobLifecycle

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


def lifecycle_events(event: dict[str, Any]) -> Iterator[JobLifecycle]:
    """The batch's lifecycle events in partition order. A record that is not one is logged and skipped: it
    cannot become one by retrying."""
    batch = KafkaEvent.model_validate(event)
    for records in batch.records.values():
        for record in records:
            try:
                yield JobLifecycle.model_validate_json(record.decoded_value())
            except ValidationError as exc:
                log.warning("%s-%d@%d is not a lifecycle event: %s", record.topic, record.partition, record.offset, exc)
