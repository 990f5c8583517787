"""Reads that the views of several dialects need: a model's latest training, a queued training's place."""

from __future__ import annotations

from events.records.jobs import TrainingJob
from events.records.models import ModelRecord
from events.states import JobKind
from infra.runtime import ServiceContext


async def latest_training(context: ServiceContext, model: ModelRecord) -> TrainingJob | None:
    """The model's most recent training record, if it ever trained."""
    return await context.jobs.get_as(model.trainingId, TrainingJob) if model.trainingId else None


async def queue_position(context: ServiceContext, training: TrainingJob) -> int:
    """How many trainings wait ahead of this queued one (the Scenario-style `position`, the custom-models
    API's `queuePosition`)."""
    return await context.jobs.count_queued_before(training.createdAt, JobKind.TRAINING)
