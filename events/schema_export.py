"""Export the JSON Schemas of every event type; the checked-in copies under events/schemas/ are the contract.

Run `python -m events.schema_export` after a deliberate contract change; a test fails while they differ.
"""

from __future__ import annotations

import json
from pathlib import Path

from events.envelope import CloudEvent
from events.generation import GENERATION_REQUESTED, GenerationRequested
from events.lifecycle import JobLifecycle
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


def main() -> None:
    """Write every schema to events/schemas/."""
    SCHEMA_DIR.mkdir(exist_ok=True)
    for event_type, model in EVENT_MODELS.items():
        schema_path(event_type).write_text(schema_for(model))
        print(schema_path(event_type))


if __name__ == "__main__":
    main()
