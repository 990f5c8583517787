"""What every event-driven Lambda function here shares: one event loop and one open ServiceContext per warm
container, created on the first invocation, and a synchronous `handler(event, context)` entry point."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from infra.lambda_metrics import EmbeddedMetrics, flush_quietly, in_lambda
from infra.observability import configure_process
from infra.runtime import ServiceContext
from infra.settings import Settings, get_settings
from infra.tracing import flush_spans

Process = Callable[[ServiceContext, dict[str, Any]], Awaitable[dict[str, Any] | None]]


class AsyncLambda:
    """A Lambda handler running `process(context, event)` on a loop kept across invocations."""

    def __init__(self, process: Process, settings_factory: Callable[[], Settings] = get_settings) -> None:
        self.process = process
        self.settings_factory = settings_factory
        self.runner = asyncio.Runner()
        self.context: ServiceContext | None = None
        # In Lambda, what the metrics recorded during an invocation is written as EMF lines after it.
        self.metrics = EmbeddedMetrics(self.service_name) if in_lambda() else None

    @property
    def service_name(self) -> str:
        """The service name its logs, spans and metrics carry: `lorafoundry-<function>`."""
        return f"lorafoundry-{type(self).__name__.removesuffix('Lambda').lower()}"

    async def _handle(self, event: dict[str, Any]) -> dict[str, Any] | None:
        if self.context is None:
            settings = self.settings_factory()
            configure_process(settings, self.service_name)
            self.context = await ServiceContext(settings).open()
        return await self.process(self.context, event)

    def __call__(self, event: dict[str, Any], _context: Any = None) -> dict[str, Any] | None:
        try:
            return self.runner.run(self._handle(event))
        finally:
            flush_quietly(self.metrics)
            # A container is frozen between invocations: spans waiting for their batch would go with it.
            flush_spans()

    def close(self) -> None:
        """Close the clients, then the loop: at the end of a process that ran this handler (the local event
        sources do it on SIGTERM, tests at the end of a block). On AWS a container is frozen and discarded
        instead; nothing is lost there, as every send was awaited in its invocation."""
        try:
            if self.context is not None:
                context, self.context = self.context, None
                self.runner.run(context.close())
        finally:
            # Even when a client failed to close: the loop's other tasks are cancelled and awaited here.
            self.runner.close()
