"""Placeholder: filled in by issue 15's work (a pure ASGI middleware)."""

from __future__ import annotations

from typing import Any


class RequestMetrics:
    """Pass-through for now."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)
