"""Lambda handler fed by the lifecycle topic (an MSK / self-managed Kafka event source mapping).

The event is Lambda's Kafka batch: records grouped by "topic-partition", values base64-encoded. A record
that is not a lifecycle event is dead-lettered (it cannot become one by retrying); an error while
acting on one fails the invocation, and the event source retries the batch, which every step tolerates.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from events.usecases.portraits import on_lifecycle
from functions.kafka_events import lifecycle_events
from functions.lambda_runtime import AsyncLambda
from infra.runtime import ServiceContext
from infra.settings import Settings, get_settings


async def process_kafka_event(context: ServiceContext, event: dict[str, Any]) -> None:
    """Act on every lifecycle event of the batch, in partition order."""
    for lifecycle in await lifecycle_events(context.producer, event):
        await on_lifecycle(context, lifecycle)


class PortraitsLambda(AsyncLambda):
    """The portraits function."""

    def __init__(self, settings_factory: Callable[[], Settings] = get_settings) -> None:
        super().__init__(process_kafka_event, settings_factory)


handler = PortraitsLambda()
