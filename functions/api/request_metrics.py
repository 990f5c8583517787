"""Request counts and latency of the API, by route template: a pure ASGI middleware (no buffering, no copy of the
body), outside every other layer but the tracing one, so refusals by the inner layers are counted too.

The route label is the matched route's path template (`/v1/images/jobs/{jobId}`), never the raw path: a label's
values must stay few, and raw paths carry ids. A path no route matches is one label, `unmatched`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from infra.metrics import HTTP_LATENCY, HTTP_REQUESTS

UNMATCHED = "unmatched"
# A client may send any token as a method: the label keeps the standard ones and folds the rest into one.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_template(scope: Scope, routes: Iterable[Any]) -> str:
    """The path template of the first route matching the request (method aside: a 405 names its route too), or
    `unmatched`."""
    partial: str | None = None
    for route in routes:
        match, _ = route.matches(scope)
        path = getattr(route, "path", None)
        if match is Match.FULL and path:
            return str(path)
        if match is Match.PARTIAL and path and partial is None:
            partial = str(path)
    return partial or UNMATCHED


def _route_label(scope: Scope) -> str:
    # The router leaves the route it chose in the scope; a request the inner layers answered themselves (an
    # oversized body, an idempotent replay) never reached it, so the routes are matched here instead.
    route = scope.get("route")
    path = getattr(route, "path", None)
    if path:
        return str(path)
    app = scope.get("app")
    router = getattr(app, "router", None)
    return route_template(scope, getattr(router, "routes", ()))


class RequestMetrics:
    """Counts every HTTP request by route, method and status, and times it until its last body byte is sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the server answers when the app raises before it began a response

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = _route_label(scope)
            method = scope.get("method", "")
            method = method if method in _METHODS else "other"
            HTTP_REQUESTS.labels(route=route, method=method, status=str(status)).inc()
            HTTP_LATENCY.labels(route=route, method=method).observe(time.perf_counter() - started)
