"""Lambda handler of the webhooks function, with two triggers:

- the lifecycle topic (an MSK / self-managed Kafka event source mapping): each event becomes the delivery
  its job subscribed to, attempted at once;
- a schedule (EventBridge, every minute on AWS; every few seconds in the embedded stack): every delivery
  whose retry is due is attempted.
A Kafka batch is answered with a partial batch response: a record that fails is reported, and its partition
is redelivered from it (`functions/kafka_events.py`); every step tolerates a redelivery. An error in the sweep
fails the invocation; the next scheduled one sweeps again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from functions.kafka_events import each_lifecycle_event
from functions.lambda_runtime import AsyncLambda
from functions.webhooks.dispatch import Dispatcher
from infra.runtime import ServiceContext
from infra.settings import Settings, get_settings

log = logging.getLogger(__name__)

SCHEDULED_DETAIL_TYPE = "Scheduled Event"


def is_scheduled_event(event: dict[str, Any]) -> bool:
    """Whether `event` is EventBridge's scheduled-rule event."""
    return event.get("source") == "aws.events" and event.get("detail-type") == SCHEDULED_DETAIL_TYPE


async def process_event(context: ServiceContext, event: dict[str, Any]) -> dict[str, Any]:
    """Route one invocation by its trigger."""
    dispatcher = Dispatcher(context)
    if is_scheduled_event(event):
        return {"attempted": await dispatcher.sweep()}
    return await each_lifecycle_event(context.producer, event, dispatcher.on_lifecycle)


class WebhooksLambda(AsyncLambda):
    """The webhooks function."""

    def __init__(self, settings_factory: Callable[[], Settings] = get_settings) -> None:
        super().__init__(process_event, settings_factory)


handler = WebhooksLambda()
