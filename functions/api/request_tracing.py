"""A SERVER span around every HTTP request: the root of the traces of the jobs the request creates.

A pure ASGI middleware, the app's outermost, so the span covers everything the request does (authentication,
idempotency replays, the route). The span is a child of the request's `traceparent` header when that one is well
formed; a malformed one (or none) starts a new trace. It is named `METHOD /route/{template}` once the router has
matched a route (just `METHOD` when none matched, so unknown paths do not make a name each).
"""

from __future__ import annotations

from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode

from events.envelope import is_valid_traceparent
from infra.tracing import span

Scope = dict[str, Any]
Message = dict[str, Any]


def header(scope: Scope, name: bytes) -> str | None:
    """The value of one request header (the first, if repeated), or None."""
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def route_template(scope: Scope) -> str | None:
    """The path template of the route the router matched for this request (`/v1/images/jobs/{jobId}`), or None."""
    route = scope.get("route")
    return getattr(route, "path_format", None) or getattr(route, "path", None)


class RequestTracing:
    """Makes a SERVER span per HTTP request, current while the app handles it; other scopes pass through."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        method = str(scope.get("method", "GET"))
        incoming = header(scope, b"traceparent")
        attributes = {
            "http.request.method": method,
            "url.path": scope.get("path"),
            "url.scheme": scope.get("scheme"),
            "user_agent.original": header(scope, b"user-agent"),
        }
        status: dict[str, int] = {}

        async def send_recording_status(message: Message) -> None:
            if message.get("type") == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        with span(
            method,
            traceparent=incoming if is_valid_traceparent(incoming) else None,
            kind=SpanKind.SERVER,
            attributes=attributes,
        ) as current:
            try:
                await self.app(scope, receive, send_recording_status)
            except Exception:
                status.setdefault("code", 500)  # what the server's error middleware answers (the span records it)
                raise
            finally:
                template = route_template(scope)
                if template:
                    current.update_name(f"{method} {template}")
                    current.set_attribute("http.route", template)
                if "code" in status:
                    current.set_attribute("http.response.status_code", status["code"])
                    if status["code"] >= 500:
                        current.set_status(Status(StatusCode.ERROR))
