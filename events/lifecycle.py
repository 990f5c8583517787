"""Job lifecycle events, published on the lifecycle topic when a job's status changes."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from events.envelope import TYPE_PREFIX, CloudEvent
from events.states import STATUS_FOR_KIND, JobKind, JobStatus

JOB_STARTED = f"{TYPE_PREFIX}job.started.v1"
JOB_SUCCEEDED = f"{TYPE_PREFIX}job.succeeded.v1"
JOB_FAILED = f"{TYPE_PREFIX}job.failed.v1"
JOB_CANCELED = f"{TYPE_PREFIX}job.canceled.v1"
# Not status changes: a running training's progress, and an epoch's checkpoint written.
JOB_PROGRESS = f"{TYPE_PREFIX}job.progress.v1"
JOB_CHECKPOINT = f"{TYPE_PREFIX}job.checkpoint.v1"
LIFECYCLE_TYPES = (JOB_STARTED, JOB_SUCCEEDED, JOB_FAILED, JOB_CANCELED, JOB_PROGRESS, JOB_CHECKPOINT)

# The lifecycle event announcing that a job reached a status (statuses in internal words).
EVENT_TYPE_FOR_STATUS = {
    "processing": JOB_STARTED,
    "running": JOB_STARTED,
    "training": JOB_STARTED,  # a portrait starts with its training
    "completed": JOB_SUCCEEDED,
    "succeeded": JOB_SUCCEEDED,
    "failed": JOB_FAILED,
    "canceled": JOB_CANCELED,
}

__all__ = ["JobError", "JobKind", "JobLifecycle", "JobLifecycleData", "JobProgress", "lifecycle_event_id"]

# Every status word of every kind: what the wire's `status` may be (each kind's own words are checked below).
ALL_STATUS_WORDS = sorted({status.value for enum in STATUS_FOR_KIND.values() for status in enum})


class JobError(BaseModel):
    """Why a job failed: a stable machine code and a message for people."""

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=64)
    message: str = Field(min_length=1, max_length=2000)


class JobProgress(BaseModel):
    """Where a running job is (trainings: steps)."""

    model_config = ConfigDict(extra="forbid")

    step: int = Field(ge=0)
    totalSteps: int = Field(ge=1)
    loss: float | None = None


class JobLifecycleData(BaseModel):
    """The `data` of every lifecycle event."""

    model_config = ConfigDict(extra="forbid")

    jobId: str = Field(min_length=1, max_length=64)
    kind: JobKind
    # On the wire `status` stays one string whose allowed values are all the status words: the schema cannot
    # tie a status to `kind` without restructuring the published document per kind (which consumers written
    # against the string would not follow). Python checks the word against `kind` (`_status_of_its_kind`)
    # and holds it as that kind's enum.
    status: Annotated[
        JobStatus,
        WithJsonSchema(
            {
                "type": "string",
                "enum": ALL_STATUS_WORDS,
                "title": "Status",
                "description": "The job's new status, in internal words: a status of its kind's state machine.",
            }
        ),
    ]
    occurredAt: AwareDatetime
    outputs: list[str] = Field(default_factory=list, description="S3 keys of the outputs, on success.")
    error: JobError | None = None
    progress: JobProgress | None = Field(default=None, description="job.progress: where the job is.")
    epoch: str | None = Field(default=None, description="job.checkpoint: the epoch whose checkpoint was written.")

    @model_validator(mode="after")
    def _status_of_its_kind(self) -> JobLifecycleData:
        enum = STATUS_FOR_KIND[self.kind]
        try:
            typed = enum(str(self.status))
        except ValueError:
            raise ValueError(f"status {self.status!s} is not a status of a {self.kind.value} job") from None
        # Set without revalidating (that would call this validator again).
        self.__dict__["status"] = typed
        return self


class JobLifecycle(CloudEvent[JobLifecycleData]):
    """CloudEvent `ai.lorafoundry.job.{started,succeeded,failed,canceled}.v1` on the lifecycle topic."""

    type: Literal[
        "ai.lorafoundry.job.started.v1",
        "ai.lorafoundry.job.succeeded.v1",
        "ai.lorafoundry.job.failed.v1",
        "ai.lorafoundry.job.canceled.v1",
        "ai.lorafoundry.job.progress.v1",
        "ai.lorafoundry.job.checkpoint.v1",
    ]


def lifecycle_event_id(job_id: str, status: str, sequence: str = "") -> str:
    """Deterministic event id, so a re-published transition is recognisably the same event (`sequence` tells
    one progress or checkpoint event of a job from another)."""
    return f"{job_id}:{status}" + (f":{sequence}" if sequence else "")
