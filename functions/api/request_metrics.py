"""Request counts and latency of the API, by route template: a pure ASGI middleware (no buffering, no copy of the
body), outside every other layer but the tracing one, so refusals by the inner layers are counted too.

The route label is the matched route's path template (`/v1/images/jobs/{jobId}`), never the raw path: a label's
values must stay few, and raw paths carry ids. A path no route matches is one label, `unmatched`.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from functions.api.route_templates import route_template
from infra.metrics import HTTP_LATENCY, HTTP_REQUESTS

# A client may send any token as a method: the label keeps the standard ones and folds the rest into one.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


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
            route = route_template(scope)
            method = scope.get("method", "")
            method = method if method in _METHODS else "other"
            HTTP_REQUESTS.labels(route=route, method=method, status=str(status)).inc()
            HTTP_LATENCY.labels(route=route, method=method).observe(time.perf_counter() - started)
