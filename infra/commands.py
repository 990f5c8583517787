"""A job's command event rebuilt from its record: DynamoDB is the source of truth, so whatever Kafka lost can
be published again from it (by the reconciler)."""

from __future__ import annotations

from typing import Any

from events.envelope import CloudEvent
from events.generation import GenerationRequested, GenerationRequestedData
from events.topics import GENERATION_REQUESTS, TRAINING_REQUESTS
from events.training import TrainingRequested, TrainingRequestedData
from infra.runtime import ServiceContext


def command_for(job: dict[str, Any], source: str) -> tuple[str, CloudEvent[Any], str]:
    """The topic, event and message key that start `job` (a generation or a training)."""
    if job.get("kind") == "training":
        training = TrainingRequestedData.model_validate(job["request"])
        event: CloudEvent[Any] = TrainingRequested(
            subject=job["jobId"], tenantid=job["tenantId"], source=source, data=training
        )
        # One model never trains twice at once: its trainings share a partition.
        return TRAINING_REQUESTS, event, training.modelId
    generation = GenerationRequestedData.model_validate(job["request"])
    event = GenerationRequested(subject=job["jobId"], tenantid=job["tenantId"], source=source, data=generation)
    return GENERATION_REQUESTS, event, job["jobId"]


async def republish(context: ServiceContext, job: dict[str, Any], source: str) -> None:
    """Publish `job`'s command again (workers skip a job that is done or held, so this is always safe)."""
    topic, event, key = command_for(job, source)
    await context.publisher.publish(topic, event, key=key)
