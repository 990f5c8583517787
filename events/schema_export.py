"""Export the JSON Schemas of every event type; the checked-in copies under events/schemas/ are the contract.

Run `python -m events.schema_export` after a deliberate contract change; a test fails while they differ.
"""

from __future__ import annotations

import json
from pathlib import Path

from events.envelope import CloudEvent
from events.generation import GENERATION_REQUESTED, GenerationRequested
from events.lifecycle import JobLifecycle
from events.topics import DEAD_LETTERS, GENERATION_REQUESTS, JOB_LIFECYCLE, TRAINING_REQUESTS
from events.training import TRAINING_REQUESTED, TrainingRequested

SCHEMA_DIR = Path(__file__).with_name("schemas")

EVENT_MODELS: dict[str, type[CloudEvent]] = {
    GENERATION_REQUESTED: GenerationRequested,
    TRAINING_REQUESTED: TrainingRequested,
    "ai.lorafoundry.job.lifecycle.v1": JobLifecycle,
}


def schema_for(model: type[CloudEvent]) -> str:
    """The canonical JSON text of one model's schema (stable key order, trailing newline)."""
    schema = model.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def schema_path(event_type: str) -> Path:
    """Where the checked-in schema of an event type lives."""
    return SCHEMA_DIR / f"{event_type.removeprefix('ai.lorafoundry.')}.schema.json"


ASYNCAPI_PATH = SCHEMA_DIR / "asyncapi.json"

# (channel id, topic, message id, event type, Kafka key, who sends, description)
_CHANNELS = (
    (
        "generationRequests",
        GENERATION_REQUESTS,
        "generationRequested",
        GENERATION_REQUESTED,
        "the job id",
        "send",
        "Commands to generate images. Published by the API and by direct producers; generator workers consume.",
    ),
    (
        "trainingRequests",
        TRAINING_REQUESTS,
        "trainingRequested",
        TRAINING_REQUESTED,
        "the model id (one model never trains twice at once)",
        "send",
        "Commands to train a LoRA adapter. Published by the API and by direct producers; trainers consume.",
    ),
    (
        "jobLifecycle",
        JOB_LIFECYCLE,
        "jobLifecycle",
        "ai.lorafoundry.job.lifecycle.v1",
        "the job id",
        "receive",
        "Job events: job.started, job.progress, job.checkpoint, job.succeeded, job.failed, job.canceled (.v1).",
    ),
)


def asyncapi_document() -> dict:
    """An AsyncAPI 3.0 description of the topics a producer or consumer outside the service uses."""
    channels: dict = {}
    operations: dict = {}
    messages: dict = {}
    for channel_id, topic, message_id, event_type, key, action, description in _CHANNELS:
        messages[message_id] = {
            "name": event_type,
            "contentType": "application/cloudevents+json",
            "payload": {"$ref": schema_path(event_type).name},
            "bindings": {"kafka": {"key": {"type": "string", "description": key}}},
        }
        channels[channel_id] = {
            "address": topic,
            "description": description,
            "messages": {message_id: {"$ref": f"#/components/messages/{message_id}"}},
        }
        operations[f"{action}{channel_id[0].upper()}{channel_id[1:]}"] = {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{message_id}"}],
        }
    channels["deadLetters"] = {
        "address": DEAD_LETTERS,
        "description": "Records that could not be parsed or validated, unchanged, with headers dlq-reason, "
        "dlq-topic, dlq-partition and dlq-offset.",
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "LoRA Foundry events",
            "version": "1.0.0",
            "description": "CloudEvents 1.0 (structured JSON or Kafka binary mode) on Kafka. "
            "Extension attributes: tenantid (required), traceparent (W3C, optional).",
        },
        "defaultContentType": "application/cloudevents+json",
        "servers": {"kafka": {"host": "localhost:9092", "protocol": "kafka"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def asyncapi_text() -> str:
    """The canonical JSON text of the AsyncAPI document."""
    return json.dumps(asyncapi_document(), indent=2, sort_keys=True) + "\n"


def main() -> None:
    """Write every schema, and the AsyncAPI document, to events/schemas/."""
    SCHEMA_DIR.mkdir(exist_ok=True)
    for event_type, model in EVENT_MODELS.items():
        schema_path(event_type).write_text(schema_for(model))
        print(schema_path(event_type))
    ASYNCAPI_PATH.write_text(asyncapi_text())
    print(ASYNCAPI_PATH)


if __name__ == "__main__":
    main()
