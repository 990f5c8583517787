"""CloudEvents envelope: Kafka structured and binary modes, validation, the DLQ's reasons."""

from __future__ import annotations

import json

import pytest

from events.envelope import EnvelopeError, decode_envelope, kafka_headers, parse_event
from events.generation import GENERATION_REQUESTED, GenerationRequested, GenerationRequestedData

DATA = {
    "jobId": "job_1",
    "modelId": "tiny-sd",
    "baseModel": "tiny-sd",
    "prompt": "a fox",
    "width": 64,
    "height": 64,
    "guidanceScale": 7.5,
    "numOutputs": 1,
    "numInferenceSteps": 10,
    "seed": 1,
}


def _event(**overrides) -> GenerationRequested:
    return GenerationRequested(subject="job_1", tenantid="t", data=GenerationRequestedData(**DATA), **overrides)


def test_structured_mode_round_trip() -> None:
    event = _event(traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    envelope = decode_envelope(event.to_json_bytes(), kafka_headers())
    parsed = parse_event(envelope, GenerationRequested, GENERATION_REQUESTED)
    assert parsed == event
    assert envelope["specversion"] == "1.0"
    assert dict(kafka_headers())["content-type"] == b"application/cloudevents+json"


def test_binary_mode_is_accepted() -> None:
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", b"x1"),
        ("ce_source", b"/p"),
        ("ce_type", GENERATION_REQUESTED.encode()),
        ("ce_subject", b"job_1"),
        ("ce_tenantid", b"t"),
        ("content-type", b"application/json"),
    ]
    envelope = decode_envelope(json.dumps(DATA).encode(), headers)
    parsed = parse_event(envelope, GenerationRequested, GENERATION_REQUESTED)
    assert parsed.id == "x1"
    assert parsed.data.prompt == "a fox"


@pytest.mark.parametrize(
    "value, reason", [(b"", "empty"), (b"{oops", "not JSON"), (b"[1]", "not a JSON object"), (b"\xff\xfe", "not JSON")]
)
def test_undecodable_records(value: bytes, reason: str) -> None:
    with pytest.raises(EnvelopeError, match=reason):
        decode_envelope(value, [])


def test_wrong_type_is_refused() -> None:
    envelope = json.loads(_event().to_json_bytes())
    envelope["type"] = "ai.lorafoundry.something.else.v1"
    with pytest.raises(EnvelopeError, match="unexpected event type"):
        parse_event(envelope, GenerationRequested, GENERATION_REQUESTED)


@pytest.mark.parametrize(
    "path, value, where",
    [
        (("data", "numOutputs"), 5, "data.numOutputs"),
        (("data", "width"), 100, "data.width"),
        (("data", "prompt"), "   ", "data"),
        (("data", "extra"), 1, "data.extra"),
        (("specversion",), "0.3", "specversion"),
        (("tenantid",), "", "tenantid"),
        (("traceparent",), "garbage", "traceparent"),
    ],
)
def test_invalid_fields_name_where(path: tuple[str, ...], value, where: str) -> None:
    envelope = json.loads(_event().to_json_bytes())
    target = envelope
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(EnvelopeError, match=where.replace(".", r"\.")):
        parse_event(envelope, GenerationRequested, GENERATION_REQUESTED)
