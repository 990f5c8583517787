"""Lambda handler of the lag-metrics function, invoked every minute by a schedule (EventBridge).

It needs no repositories and no producer, so it is not an `AsyncLambda` with a whole `ServiceContext`: each
run opens a broker connection and a CloudWatch client and closes them, once a minute, so a container frozen
between runs never holds a connection the broker has dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from infra.aws import create_client
from infra.consumer_lag import measure_lag, publish_lag, worker_groups
from infra.settings import Settings, get_settings


async def publish_consumer_lag(settings: Settings) -> dict[str, Any]:
    """Measure the generators' and the trainers' lag and put it into CloudWatch; what was published."""
    lags = await measure_lag(settings, worker_groups(settings))
    async with create_client(settings, "cloudwatch") as cloudwatch:
        await publish_lag(cloudwatch, lags)
    return {"lag": {item.group.group_id: item.lag for item in lags}}


class LagMetricsLambda:
    """The lag-metrics function; the event's content does not matter, only that the schedule fired."""

    def __init__(self, settings_factory: Callable[[], Settings] = get_settings) -> None:
        self.settings_factory = settings_factory

    def __call__(self, event: dict[str, Any], _context: Any = None) -> dict[str, Any]:
        return asyncio.run(publish_consumer_lag(self.settings_factory()))


handler = LagMetricsLambda()
