"""A SERVER span around every HTTP request: the root of the traces of the jobs the request creates.

FastAPI (0.165 on) makes that span itself once a tracer provider is configured (`infra.tracing`): outside every
middleware, a child of the request's `traceparent` header when well formed (a malformed one, or none, starts a new
trace), named `METHOD /route/{template}` once a route matched, with the HTTP attributes and status, and spans for
dependency resolution, the endpoint and serialization under it. This middleware, the app's outermost, then only
notes that span as the request's. Where the framework made none (its tracing turned off, another framework, an
older FastAPI), it makes the same span itself.

Either way `request_traceparent()` names the request's SERVER span while the request is handled: what the jobs it
creates record (`functions.api.dependencies.valid_traceparent`).
"""

from __future__ import annotations

import contextvars
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from events.envelope import is_valid_traceparent
from functions.api.route_templates import matched_template
from infra.tracing import span

Scope = dict[str, Any]
Message = dict[str, Any]

_REQUEST_TRACEPARENT: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "lf_request_traceparent", default=None
)


def request_traceparent() -> str | None:
    """The `traceparent` of the current request's SERVER span, or None outside a traced request."""
    return _REQUEST_TRACEPARENT.get()


def traceparent_of(current: Span) -> str | None:
    """The `traceparent` header value naming `current`, or None for an invalid span."""
    context = current.get_span_context()
    if not context.is_valid:
        return None
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def header(scope: Scope, name: bytes) -> str | None:
    """The value of one request header (the first, if repeated), or None."""
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _is_server_span(current: Span) -> bool:
    # The framework's span for this very request: nothing outside the app makes SERVER spans in this process.
    return isinstance(current, ReadableSpan) and current.kind is SpanKind.SERVER and current.is_recording()


class RequestTracing:
    """Makes sure every HTTP request has a SERVER span, current while the app handles it; other scopes pass."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        framework_span = trace.get_current_span()
        if _is_server_span(framework_span):
            token = _REQUEST_TRACEPARENT.set(traceparent_of(framework_span))
            try:
                await self.app(scope, receive, send)
            finally:
                _REQUEST_TRACEPARENT.reset(token)
            return
        await self._traced(scope, receive, send)

    async def _traced(self, scope: Scope, receive: Any, send: Any) -> None:
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
            token = _REQUEST_TRACEPARENT.set(traceparent_of(current))
            try:
                await self.app(scope, receive, send_recording_status)
            except Exception:
                status.setdefault("code", 500)  # what the server's error middleware answers (the span records it)
                raise
            finally:
                _REQUEST_TRACEPARENT.reset(token)
                template = matched_template(scope)
                if template:
                    current.update_name(f"{method} {template}")
                    current.set_attribute("http.route", template)
                if "code" in status:
                    current.set_attribute("http.response.status_code", status["code"])
                    if status["code"] >= 500:
                        current.set_status(Status(StatusCode.ERROR))
