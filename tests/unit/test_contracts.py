"""The event contract: checked-in schemas match the models, and old producers' events still validate."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from events.envelope import parse_event
from events.schema_export import EVENT_MODELS, schema_for, schema_path

EXAMPLES = sorted((Path(__file__).parents[2] / "events" / "examples").glob("*.json"))


@pytest.mark.parametrize("event_type", sorted(EVENT_MODELS))
def test_checked_in_schema_matches_the_model(event_type: str) -> None:
    # Fails when a model changes without `python -m events.schema_export` (a deliberate contract change).
    assert schema_path(event_type).read_text() == schema_for(EVENT_MODELS[event_type])


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_published_examples_still_validate(example: Path) -> None:
    # Examples are what producers were told to send: a change that rejects one breaks them.
    event = json.loads(example.read_text())
    event_type = event["type"]
    key = event_type if event_type in EVENT_MODELS else "ai.lorafoundry.job.lifecycle.v1"
    schema = json.loads(schema_path(key).read_text())
    jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker()).validate(event)
    parse_event(event, EVENT_MODELS[key], event_type)


def test_there_are_examples_for_every_schema() -> None:
    types = {json.loads(p.read_text())["type"] for p in EXAMPLES}
    assert "ai.lorafoundry.generation.requested.v1" in types
    assert {"ai.lorafoundry.job.succeeded.v1", "ai.lorafoundry.job.failed.v1"} <= types


def test_schema_rejects_what_the_model_rejects() -> None:
    event = json.loads(EXAMPLES[0].read_text()) if "generation" in EXAMPLES[0].name else None
    assert event is not None
    event["data"]["numOutputs"] = 5
    schema = json.loads(schema_path(event["type"]).read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(event, schema)


def test_the_asyncapi_document_is_current_and_points_at_real_schemas() -> None:
    from events.schema_export import ASYNCAPI_PATH, asyncapi_text
    from events.topics import ALL_TOPICS

    assert ASYNCAPI_PATH.read_text() == asyncapi_text()
    document = json.loads(asyncapi_text())
    assert {c["address"] for c in document["channels"].values()} == set(ALL_TOPICS)
    for message in document["components"]["messages"].values():
        schema = ASYNCAPI_PATH.with_name(message["payload"]["$ref"])
        assert schema.exists(), schema
