"""Lambda handler fed by the lifecycle topic (an MSK / self-managed Kafka event source mapping).

The event is Lambda's Kafka batch: records grouped by "topic-partition", values base64-encoded. A record
that is not a lifecycle event is dead-lettered (it cannot become one by retrying); a record whose action fails
is reported in the partial batch response, and Lambda redelivers its partition from it, which every step
tolerates (`functions/kafka_events.py`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from events.usecases.portraits import on_lifecycle
from functions.kafka_events import each_lifecycle_event
from functions.lambda_runtime import AsyncLambda
from infra.runtime import ServiceContext
from infra.settings import Settings, get_settings


async def process_kafka_event(context: ServiceContext, event: dict[str, Any]) -> dict[str, Any]:
    """Act on every lifecycle event of the batch, in partition order; the partial batch response. The base models
    registered at run time are renewed first (a portrait's styles are generated on its model's base)."""
    await context.refresh_base_models()
    return await each_lifecycle_event(context.producer, event, partial(on_lifecycle, context))


class PortraitsLambda(AsyncLambda):
    """The portraits function."""

    def __init__(self, settings_factory: Callable[[], Settings] = get_settings) -> None:
        super().__init__(process_kafka_event, settings_factory)


handler = PortraitsLambda()
