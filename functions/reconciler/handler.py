"""Lambda handler of the reconciler, invoked by a schedule (EventBridge; the embedded stack's scheduler)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from events.envelope import utcnow
from functions.lambda_runtime import AsyncLambda
from functions.reconciler.reconcile import reconcile
from infra.runtime import ServiceContext
from infra.settings import Settings, get_settings


async def process_schedule(context: ServiceContext, event: dict[str, Any]) -> dict[str, Any]:
    """One reconciliation pass; the event's content does not matter, only that the schedule fired."""
    return asdict(await reconcile(context, utcnow()))


class ReconcilerLambda(AsyncLambda):
    """The reconciler function."""

    def __init__(self, settings_factory: Callable[[], Settings] = get_settings) -> None:
        super().__init__(process_schedule, settings_factory)


handler = ReconcilerLambda()
