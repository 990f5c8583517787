"""OpenTelemetry spans, joined across the service by the W3C `traceparent` every event and job carries.

Spans are always made (their trace ids go into the events and the logs); they leave the process only when
LF_OTLP_ENDPOINT names a collector. `configure_tracing` is called once per process by its entry point; until it
runs, spans are the API's no-op ones, which pass a parent's trace context through unchanged.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ParamSpec, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from infra.settings import Settings

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACER_NAME = "lorafoundry"
_provider: TracerProvider | None = None
_configure_lock = threading.Lock()

P = ParamSpec("P")
R = TypeVar("R")


def span_exporter(settings: Settings) -> SpanExporter | None:
    """The OTLP/HTTP exporter aimed at `<LF_OTLP_ENDPOINT>/v1/traces`, or None when no endpoint is set."""
    if not settings.otlp_endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=settings.otlp_endpoint.rstrip("/") + "/v1/traces")


def build_provider(settings: Settings, service_name: str) -> TracerProvider:
    """A tracer provider for `service_name`, sampling new traces at LF_TRACE_SAMPLE_RATIO (a child follows its
    parent's decision), batching its spans to the OTLP exporter when there is one."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name}),
        sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio)),
    )
    exporter = span_exporter(settings)
    if exporter is not None:
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def configure_tracing(settings: Settings, service_name: str) -> TracerProvider:
    """Install this process's tracer provider (once; later calls return the first one)."""
    global _provider
    with _configure_lock:  # a test process configures from its event sources' threads as well
        if _provider is None:
            _provider = build_provider(settings, service_name)
            trace.set_tracer_provider(_provider)
        return _provider


def add_span_processor(processor: SpanProcessor) -> None:
    """Send this process's spans to one more processor as well (tests: an in-memory exporter)."""
    if _provider is None:
        raise RuntimeError("configure_tracing() has not run in this process")
    _provider.add_span_processor(processor)


def tracer() -> trace.Tracer:
    """The service's tracer (a no-op one until `configure_tracing` ran)."""
    return trace.get_tracer(_TRACER_NAME)


def context_of(traceparent: str | None) -> otel_context.Context | None:
    """The trace context a `traceparent` header value names, or None for none (or a malformed one)."""
    if not traceparent:
        return None
    extracted = _PROPAGATOR.extract({"traceparent": traceparent})
    return extracted if trace.get_current_span(extracted).get_span_context().is_valid else None


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id (32 hex digits) a `traceparent` names, or None for none or a malformed one."""
    parent = context_of(traceparent)
    if parent is None:
        return None
    return format(trace.get_current_span(parent).get_span_context().trace_id, "032x")


@contextlib.contextmanager
def span(
    name: str,
    *,
    traceparent: str | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Span]:
    """A span for the block, made current: a child of `traceparent` when one is given (the event's or the job's),
    else of the current span (or a new trace's root). An exception leaving the block is recorded on it."""
    parent = context_of(traceparent)
    attrs = {k: v for k, v in (attributes or {}).items() if v is not None}
    with tracer().start_as_current_span(name, context=parent, kind=kind, attributes=attrs) as current:
        yield current


def mark_failed(current: Span, exc: BaseException) -> None:
    """Record on `current` an error that was handled (so it did not leave the span's block)."""
    current.record_exception(exc)
    current.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}"))


def current_traceparent() -> str | None:
    """The `traceparent` header value of the current span, or None outside any (valid) span."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def current_trace_id() -> str | None:
    """The current span's trace id as 32 hex digits (what logs carry), or None outside any span."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def current_span_id() -> str | None:
    """The current span's id as 16 hex digits, or None outside any span."""
    context = trace.get_current_span().get_span_context()
    return format(context.span_id, "016x") if context.is_valid else None


def in_current_context(function: Callable[P, R]) -> Callable[P, R]:
    """`function`, to be run on another thread (run_in_executor) inside a copy of this one's context: threads do
    not inherit contextvars, and the current span and the log context (`infra.logs.job_log_context`) live there."""
    return functools.partial(contextvars.copy_context().run, function)  # type: ignore[return-value]


def flush_spans(timeout_millis: int = 2000) -> bool:
    """Export the spans still batched (end of a Lambda invocation: a frozen container exports nothing); True when
    done, or when there is nothing to flush."""
    return _provider.force_flush(timeout_millis) if _provider is not None else True
