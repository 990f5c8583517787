"""Tracing without a collector: where spans go (OTLP only when configured), and how they join one trace."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from functions.api.dependencies import TraceparentDep
from functions.api.request_tracing import RequestTracing
from infra.logs import current_job, job_log_context
from infra.settings import Settings
from infra.tracing import (
    add_span_processor,
    build_provider,
    configure_tracing,
    current_trace_id,
    current_traceparent,
    in_current_context,
    span,
    span_exporter,
    trace_id_of,
)
from tests.support import generation_request

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"


def test_an_otlp_endpoint_exports_in_batches_to_its_traces_path() -> None:
    settings = Settings(otlp_endpoint="http://collector:4318/")
    exporter = span_exporter(settings)
    assert type(exporter).__name__ == "OTLPSpanExporter"
    assert exporter._endpoint == "http://collector:4318/v1/traces"  # type: ignore[union-attr]

    provider = build_provider(settings, "lorafoundry-test")
    try:
        (processor,) = provider._active_span_processor._span_processors
        assert isinstance(processor, BatchSpanProcessor)
        assert processor._batch_processor._exporter._endpoint == "http://collector:4318/v1/traces"
        assert provider.resource.attributes["service.name"] == "lorafoundry-test"
    finally:
        provider.shutdown()


def test_without_an_endpoint_no_exporter_is_installed() -> None:
    settings = Settings(otlp_endpoint=None)
    assert span_exporter(settings) is None
    provider = build_provider(settings, "lorafoundry-test")
    assert provider._active_span_processor._span_processors == ()


@pytest.fixture(scope="module")
def exporter() -> Iterator[InMemorySpanExporter]:
    configure_tracing(Settings(), "lorafoundry-test")
    exporter = InMemorySpanExporter()
    add_span_processor(SimpleSpanProcessor(exporter))
    try:
        yield exporter
    finally:
        exporter.shutdown()  # the provider keeps its processor, which stores nothing more (and says nothing)


@pytest.fixture
def spans(exporter: InMemorySpanExporter) -> InMemorySpanExporter:
    exporter.clear()
    return exporter


def test_a_span_joins_the_trace_its_traceparent_names_and_a_malformed_one_starts_another(spans) -> None:
    with span("joined", traceparent=TRACEPARENT):
        assert current_trace_id() == TRACE_ID
        assert trace_id_of(current_traceparent()) == TRACE_ID
    with span("fresh", traceparent="00-garbage"):
        fresh = current_trace_id()
    assert fresh is not None and fresh != TRACE_ID
    assert current_trace_id() is None
    joined = next(s for s in spans.get_finished_spans() if s.name == "joined")
    assert format(joined.parent.span_id, "016x") == PARENT_SPAN_ID


def test_work_handed_to_a_thread_keeps_the_span_and_the_job_log_context(spans) -> None:
    def on_the_thread() -> tuple[str | None, tuple[str | None, str | None]]:
        return current_trace_id(), current_job()

    with (
        concurrent.futures.ThreadPoolExecutor(1) as executor,
        span("job", traceparent=TRACEPARENT),
        job_log_context("job_1", "tenant-a"),
    ):
        bare = executor.submit(on_the_thread).result()
        carried = executor.submit(in_current_context(on_the_thread)).result()
    assert bare == (None, (None, None))  # what a thread sees by default
    assert carried == (TRACE_ID, ("job_1", "tenant-a"))


class _Producer:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send_and_wait(self, topic: str, **record: Any) -> None:
        self.sent.append({"topic": topic, **record})


def test_a_published_event_names_its_send_span_which_hangs_under_the_current_one(spans) -> None:
    from events.generation import GenerationRequested
    from infra.kafka import EventPublisher

    producer = _Producer()
    event = GenerationRequested(
        subject="job_1", tenantid="tenant-a", traceparent=TRACEPARENT, data=generation_request("job_1")
    )

    async def publish() -> None:
        with span("request", traceparent=TRACEPARENT):
            await EventPublisher(producer).publish("topic-a", event)  # type: ignore[arg-type]

    asyncio.run(publish())
    finished = {s.name: s for s in spans.get_finished_spans()}
    send, request = finished["send topic-a"], finished["request"]
    assert send.kind is SpanKind.PRODUCER and send.parent.span_id == request.context.span_id
    sent = json.loads(producer.sent[0]["value"])
    assert sent["traceparent"] == f"00-{TRACE_ID}-{format(send.context.span_id, '016x')}-01"


def test_an_event_without_a_trace_is_sent_without_one(spans) -> None:
    from events.generation import GenerationRequested
    from infra.kafka import EventPublisher

    producer = _Producer()
    event = GenerationRequested(subject="job_2", tenantid="tenant-a", data=generation_request("job_2"))
    asyncio.run(EventPublisher(producer).publish("topic-a", event))  # type: ignore[arg-type]
    assert "traceparent" not in json.loads(producer.sent[0]["value"])


def _app(native: bool) -> FastAPI:
    # FastAPI's own telemetry makes the SERVER span when on; RequestTracing makes it when that is off.
    app = FastAPI(telemetry={"tracing": native})

    @app.get("/items/{item_id}")
    async def item(item_id: str, traceparent: TraceparentDep) -> dict[str, str | None]:
        return {"traceparent": traceparent}

    app.add_middleware(RequestTracing)
    return app


async def _get(path: str, headers: dict[str, str], native: bool) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app(native)), base_url="http://t") as client:
        return await client.get(path, headers=headers)


@pytest.mark.parametrize("native", [True, False], ids=["fastapi-span", "own-span"])
def test_a_request_span_is_named_by_its_route_and_is_what_its_jobs_record(spans, native: bool) -> None:
    response = asyncio.run(_get("/items/42", {"traceparent": TRACEPARENT}, native))
    (server,) = [
        s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER and s.attributes["url.path"] == "/items/42"
    ]
    assert server.name == "GET /items/{item_id}"
    assert server.attributes["http.route"] == "/items/{item_id}"
    assert server.attributes["http.response.status_code"] == 200
    assert format(server.parent.span_id, "016x") == PARENT_SPAN_ID
    assert response.json()["traceparent"] == f"00-{TRACE_ID}-{format(server.context.span_id, '016x')}-01"


@pytest.mark.parametrize("native", [True, False], ids=["fastapi-span", "own-span"])
def test_a_malformed_traceparent_header_starts_a_new_trace(spans, native: bool) -> None:
    response = asyncio.run(_get("/missing", {"traceparent": "not-a-trace-context"}, native))
    assert response.status_code == 404
    (server,) = [
        s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER and s.attributes["url.path"] == "/missing"
    ]
    assert server.name == "GET"  # no route matched: no name per unknown path
    assert server.parent is None
    assert server.attributes["http.response.status_code"] == 404


def test_a_lifecycle_event_carries_its_jobs_trace_to_the_lambda_consumers_span(spans) -> None:
    from events.records.jobs import GenerationJob
    from events.states import GenerationStatus
    from events.usecases.lifecycle import lifecycle_event
    from functions.kafka_events import ReceivedKafkaRecord, handle_record

    job = GenerationJob(
        jobId="job_3", tenantId="tenant-a", request=generation_request("job_3"), traceparent=TRACEPARENT
    )
    event = lifecycle_event(job, GenerationStatus.COMPLETED, "/test")
    assert event.traceparent == TRACEPARENT
    record = ReceivedKafkaRecord(
        topic="job-lifecycle", partition=0, offset=5, key=b"job_3", value=event.to_json_bytes(), headers=[]
    )
    seen: list[tuple[str | None, tuple[str | None, str | None]]] = []

    async def act(_event: Any) -> None:
        seen.append((current_trace_id(), current_job()))

    assert asyncio.run(handle_record(_Producer(), record, act))  # type: ignore[arg-type]
    assert seen == [(TRACE_ID, ("job_3", "tenant-a"))]
    (consumed,) = [s for s in spans.get_finished_spans() if s.attributes.get("lorafoundry.job_id") == "job_3"]
    assert consumed.kind is SpanKind.CONSUMER
    assert format(consumed.parent.span_id, "016x") == PARENT_SPAN_ID
    assert consumed.attributes["messaging.kafka.offset"] == 5


@pytest.mark.parametrize(
    ("status", "label"), [(200, "delivered"), (503, "retry"), (410, "gone"), (None, "failed")], ids=str
)
def test_a_webhook_attempt_is_a_client_span_counted_by_outcome(spans, status: int | None, label: str) -> None:
    from events.webhooks import Verdict
    from functions.webhooks.dispatch import Outcome, _record_outcome
    from infra.metrics import WEBHOOK_DELIVERIES

    verdict = {"delivered": "delivered", "retry": "retry", "gone": "gone", "failed": "gave_up"}[label]
    before = WEBHOOK_DELIVERIES.labels(outcome=label)._value.get()
    with span("webhook delivery", kind=SpanKind.CLIENT) as current:
        _record_outcome(
            current, Outcome(status, None, None if status else "ConnectError: refused", 1.0), Verdict(verdict)
        )
    assert WEBHOOK_DELIVERIES.labels(outcome=label)._value.get() == before + 1
    (attempt,) = [s for s in spans.get_finished_spans() if s.name == "webhook delivery"]
    assert attempt.attributes["lorafoundry.verdict"] == verdict
    assert attempt.status.is_ok == (label == "delivered")


def test_flushing_without_an_exporter_is_immediate(exporter) -> None:
    from infra.tracing import flush_spans

    assert flush_spans(100)
