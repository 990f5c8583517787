"""Job records: one table, three kinds (generation, training, portrait), told apart by `kind`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from events.generation import GenerationRequestedData
from events.lifecycle import JobError
from events.markers import GenerationRun
from events.records.base import IsoTime, StoredRecord, now_iso
from events.states import GenerationStatus, JobKind, PortraitStatus, TrainingStatus
from events.training import TrainingProgress, TrainingRequestedData, TrainingRun
from events.webhooks import WebhookSubscription


class EpochRecord(BaseModel):
    """One finished epoch of a training, as recorded from its `epoch.json` marker."""

    model_config = ConfigDict(extra="forbid")

    step: int = Field(ge=1, description="The training step the epoch ended at.")
    adapterKey: str = Field(description="S3 key of the epoch's adapter.")
    sampleKeys: list[str] = Field(default_factory=list, description="S3 keys of the epoch's sample images.")
    loss: float | None = Field(default=None, description="The loss at the end of the epoch.")
    createdAt: str = Field(description="When the checkpoint was written (ISO 8601, from the marker).")


class PortraitStyle(BaseModel):
    """One chosen style of a portrait and the generation job that paints it."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="The style's id in the style catalogue (or the uploaded style's id).")
    name: str = Field(description="The style's display name.")
    prompt: str = Field(description="The full prompt the style's generation runs with.")
    jobId: str = Field(description="The generation job of this style (deterministic from the portrait id).")
    imageKey: str | None = Field(default=None, description="S3 key of the style's reference image, if any.")


class JobRecordBase(StoredRecord):
    """Fields every job has, whatever its kind."""

    string_sets = frozenset({"publishedEvents"})

    jobId: str = Field(min_length=1, description="The job's id (the table's key).")
    tenantId: str = Field(min_length=1, description="The tenant (API key owner) the job belongs to.")
    version: int = Field(default=1, ge=1, description="Bumped by every write; conditional writes compare it.")
    createdAt: IsoTime = Field(default_factory=now_iso, description="When the job was recorded (ISO 8601).")
    updatedAt: IsoTime = Field(default_factory=now_iso, description="When the job was last written (ISO 8601).")
    queue: str | None = Field(
        default=None, description="Sparse-index partition while the job waits for a worker (removed on claim)."
    )
    inFlight: str | None = Field(
        default=None, description="Sparse-index partition while a worker holds the job (removed when it ends)."
    )
    leaseOwner: str | None = Field(default=None, description="The worker id holding the job's lease.")
    leaseExpiresAt: float | None = Field(default=None, description="When the lease lapses (epoch seconds).")
    attempts: int | None = Field(default=None, ge=0, description="How many times a worker claimed the job.")
    startedAt: IsoTime | None = Field(default=None, description="When a worker first claimed the job.")
    completedAt: IsoTime | None = Field(default=None, description="When the job reached its terminal status.")
    outputs: list[str] | None = Field(default=None, description="S3 keys of the outputs, on success.")
    error: JobError | None = Field(default=None, description="Why the job failed.")
    publishedEvents: set[str] | None = Field(
        default=None, description="Statuses whose lifecycle event reached Kafka (a string set)."
    )
    webhook: WebhookSubscription | None = Field(default=None, description="The caller's webhook, if any.")
    deletedAt: IsoTime | None = Field(default=None, description="When the caller deleted (hid) the job.")
    republishedAt: IsoTime | None = Field(
        default=None, description="When the reconciler last published the job's command again."
    )
    republishedAttempt: int | None = Field(
        default=None, ge=0, description="The job's `attempts` when the reconciler last republished it."
    )
    modelId: str | None = Field(default=None, description="The model the job uses or trains.")
    traceparent: str | None = Field(
        default=None, description="The W3C trace context the job was created in: its spans and events join it."
    )
    cancelRequested: bool | None = Field(default=None, description="The caller asked the running job to stop.")
    cancelRequestedAt: IsoTime | None = Field(default=None, description="When the stop was asked for.")
    canceledBy: str | None = Field(default=None, description="Who canceled a queued job (`user`).")
    canceledAtStep: int | None = Field(default=None, ge=0, description="The step a running job stopped at.")


class GenerationJob(JobRecordBase):
    """A generation job: the API's (or a direct producer's, or a portrait's) request for images."""

    kind: Literal[JobKind.GENERATION] = Field(default=JobKind.GENERATION, description="The job's kind.")
    status: GenerationStatus = Field(default=GenerationStatus.QUEUED, description="Where the job is.")
    request: GenerationRequestedData = Field(description="The `generation.requested` data the job runs.")
    result: GenerationRun | None = Field(
        default=None, description="How it ran (the worker's result.json less `jobId` and `outputs`)."
    )
    scaleConfigLabels: list[str] | None = Field(
        default=None, description="The custom-models API's prediction: the labels of its scale configs."
    )
    portraitId: str | None = Field(default=None, description="The portrait this job paints a style of.")


class TrainingJob(JobRecordBase):
    """A training job: teaching a model's LoRA adapter from its training images."""

    kind: Literal[JobKind.TRAINING] = Field(default=JobKind.TRAINING, description="The job's kind.")
    status: TrainingStatus = Field(default=TrainingStatus.QUEUED, description="Where the training is.")
    request: TrainingRequestedData = Field(description="The `training.requested` data the training runs.")
    triggerWord: str = Field(description="The word that calls up the trained subject in prompts.")
    dataIds: list[str] | None = Field(default=None, description="The training images used (their data ids).")
    epochs: dict[str, EpochRecord] = Field(
        default_factory=dict, description="Finished epochs by name (`000001`...); present from creation."
    )
    estimatedSeconds: float | None = Field(default=None, ge=0, description="How long the training should take.")
    progress: TrainingProgress | None = Field(default=None, description="The latest progress.json snapshot.")
    progressSeq: int | None = Field(default=None, ge=0, description="`seq` of the recorded progress snapshot.")
    adapterKey: str | None = Field(default=None, description="S3 key of the final adapter, on success.")
    result: TrainingRun | None = Field(
        default=None, description="How it ran (the worker's result.json less `trainingId` and `modelId`)."
    )
    portraitId: str | None = Field(default=None, description="The portrait this training is the first step of.")


class PortraitJob(JobRecordBase):
    """A headshot API portrait: train the person's LoRA, then generate each chosen style."""

    kind: Literal[JobKind.PORTRAIT] = Field(default=JobKind.PORTRAIT, description="The job's kind.")
    status: PortraitStatus = Field(default=PortraitStatus.TRAINING, description="Where the portrait is.")
    trainingId: str = Field(description="The training of the person's model.")
    gender: str = Field(description="The gender the prompts are written for.")
    customizations: str | None = Field(default=None, description="The caller's words added to every prompt.")
    imagesPerStyle: int = Field(default=1, ge=1, description="How many images each style's generation makes.")
    styles: list[PortraitStyle] = Field(description="The chosen styles, each with its generation job.")


Job = Annotated[GenerationJob | TrainingJob | PortraitJob, Field(discriminator="kind")]
JOB_CLASSES: dict[JobKind, type[GenerationJob] | type[TrainingJob] | type[PortraitJob]] = {
    JobKind.GENERATION: GenerationJob,
    JobKind.TRAINING: TrainingJob,
    JobKind.PORTRAIT: PortraitJob,
}
_JOB = TypeAdapter(Job)


def parse_job(item: dict[str, Any]) -> GenerationJob | TrainingJob | PortraitJob:
    """A stored job item (plain values) as the record class of its kind (an item without `kind`, from
    before every writer set it, is a generation)."""
    return _JOB.validate_python(item if "kind" in item else {**item, "kind": JobKind.GENERATION.value})
