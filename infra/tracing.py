"""OpenTelemetry spans, joined across the service by the W3C `traceparent` every event and job carries.

Spans are always made (their trace ids go into the events and the logs); they leave the process only when
LF_OTLP_ENDPOINT names a collector. `configure_tracing` is called once per process by its entry point.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from infra.settings import Settings

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACER_NAME = "lorafoundry"
_provider: TracerProvider | None = None


def configure_tracing(settings: Settings, service_name: str) -> TracerProvider:
    """Install this process's tracer provider (once; later calls return the first one), exporting over OTLP/HTTP
    when LF_OTLP_ENDPOINT is set."""
    global _provider
    if _provider is not None:
        return _provider
    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name}),
        sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio)),
    )
    if settings.otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        endpoint = settings.otlp_endpoint.rstrip("/") + "/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    _provider = provider
    return provider


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


@contextlib.contextmanager
def span(
    name: str,
    *,
    traceparent: str | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Span]:
    """A span for the block, made current: a child of `traceparent` when one is given (the event's or the job's),
    else of the current span (or a new trace's root)."""
    parent = context_of(traceparent)
    with tracer().start_as_current_span(name, context=parent, kind=kind, attributes=dict(attributes or {})) as current:
        yield current


def current_traceparent() -> str | None:
    """The `traceparent` header value of the current span, or None outside any (valid) span."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def current_trace_id() -> str | None:
    """The current span's trace id as 32 hex digits (what logs carry), or None outside any span."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None
