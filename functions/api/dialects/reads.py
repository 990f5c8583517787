"""Reads that the views of several dialects need: a model's latest training, a queued job's place and when
it should start."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from events.envelope import utcnow
from events.records.jobs import GenerationJob, TrainingJob
from events.records.models import ModelRecord
from events.states import JobKind
from infra.runtime import ServiceContext

# The jobs table keeps no record of how fast generations ran, so a job ahead in the queue is taken to cost
# its base model's default steps at the base model's typical step rate (the registry's training speed: a
# guided denoising step, two UNet passes, costs about what a training step does). Unknown base model: this.
FALLBACK_GENERATION_SECONDS = 10.0


async def latest_training(context: ServiceContext, model: ModelRecord) -> TrainingJob | None:
    """The model's most recent training record, if it ever trained."""
    return await context.jobs.get_as(model.trainingId, TrainingJob) if model.trainingId else None


async def queue_position(context: ServiceContext, training: TrainingJob) -> int:
    """How many trainings wait ahead of this queued one (the Scenario-style `position`, the custom-models
    API's `queuePosition`)."""
    return await context.jobs.count_queued_before(training.createdAt, JobKind.TRAINING)


@dataclass(frozen=True)
class QueuePlace:
    """Where a queued generation stands: the jobs ahead of it (all tenants) and when it should start."""

    position: int
    estimated_start: str


def typical_generation_seconds(context: ServiceContext, base_model: str) -> float:
    """How long one generation on `base_model` typically takes (see FALLBACK_GENERATION_SECONDS)."""
    spec = context.base_models.get(base_model)
    if spec is None or spec.train_steps_per_second <= 0:
        return FALLBACK_GENERATION_SECONDS
    return spec.default_steps / spec.train_steps_per_second


async def generation_queue_place(context: ServiceContext, job: GenerationJob) -> QueuePlace:
    """How many generations wait ahead of this queued one, and when it should start if each of them takes
    the typical time of this job's base model, one after another (a rough guide: more workers start it
    sooner)."""
    position = await context.jobs.count_queued_before(job.createdAt, JobKind.GENERATION)
    wait = position * typical_generation_seconds(context, job.request.baseModel)
    return QueuePlace(position=position, estimated_start=(utcnow() + timedelta(seconds=wait)).isoformat())
