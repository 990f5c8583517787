"""One job's spans, from the HTTP request through Kafka, the worker and the S3 notification, in one trace."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from events.topics import GENERATION_REQUESTS
from infra.settings import Settings
from infra.tracing import add_span_processor, configure_tracing
from tests.support import bearer, eventually, wait_for_job

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("worker")]

CLIENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"
CLIENT_TRACEPARENT = f"00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01"


@pytest.fixture(scope="module")
def spans(settings: Settings) -> Iterator[InMemorySpanExporter]:
    """Every span this process ends while the module runs (the API, the worker and the poller all run in it)."""
    configure_tracing(settings, "lorafoundry-test")
    exporter = InMemorySpanExporter()
    add_span_processor(SimpleSpanProcessor(exporter))
    try:
        yield exporter
    finally:
        exporter.shutdown()  # the provider keeps its processor, which stores nothing more (and says nothing)


def _hex(value: int, digits: int) -> str:
    return format(value, f"0{digits}x")


def _of_job(found: tuple[ReadableSpan, ...], job_id: str, name: str) -> list[ReadableSpan]:
    return [s for s in found if s.name == name and (s.attributes or {}).get("lorafoundry.job_id") == job_id]


def _ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    """The names of the span's ancestors among the finished spans, nearest first, up to one not there."""
    names: list[str] = []
    parent = span.parent
    while parent is not None and parent.span_id in by_id:
        names.append(by_id[parent.span_id].name)
        parent = by_id[parent.span_id].parent
    return names


async def test_one_job_is_one_trace_from_the_request_to_the_marker(client, api_key, spans, poller) -> None:
    response = await client.post(
        "/v1/images/generate",
        json={"modelId": "tiny-sd", "prompt": "a traced fox", "width": 64, "height": 64},
        headers={**bearer(api_key), "traceparent": CLIENT_TRACEPARENT},
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["jobId"]
    assert (await wait_for_job(client, job_id, bearer(api_key)))["status"] == "completed"

    # The marker's span ends just after the status write the API saw.
    found = await eventually(
        lambda: _finished(spans),
        lambda now: bool(_of_job(now, job_id, "s3-events marker")),
        timeout_s=10,
        what="the marker's span",
    )
    by_id = {s.context.span_id: s for s in found}

    (request,) = [
        s
        for s in found
        if s.kind is SpanKind.SERVER
        and s.name == "POST /v1/images/generate"
        and _hex(s.context.trace_id, 32) == CLIENT_TRACE_ID
    ]
    assert request.parent is not None and _hex(request.parent.span_id, 16) == CLIENT_SPAN_ID
    assert request.attributes["http.response.status_code"] == 202
    assert request.attributes["http.route"] == "/v1/images/generate"

    (consumed,) = _of_job(found, job_id, f"process {GENERATION_REQUESTS}")
    assert consumed.kind is SpanKind.CONSUMER
    assert consumed.context.trace_id == request.context.trace_id
    assert consumed.attributes["lorafoundry.tenant"] == "tenant-a"
    chain = _ancestors(consumed, by_id)
    assert chain[0] == f"send {GENERATION_REQUESTS}", chain  # the send, inside the request
    assert "POST /v1/images/generate" in chain, chain

    markers = _of_job(found, job_id, "s3-events marker")
    assert {s.context.trace_id for s in markers} == {request.context.trace_id}
    assert any(s.attributes.get("lorafoundry.outcome") for s in markers)
    # The worker's writes to S3 are spans of the same trace, under its CONSUMER span.
    puts = [s for s in found if s.name == "S3.PutObject" and s.context.trace_id == request.context.trace_id]
    assert puts and all(consumed.name in _ancestors(s, by_id) for s in puts)


async def _finished(exporter: InMemorySpanExporter) -> tuple[ReadableSpan, ...]:
    return exporter.get_finished_spans()
