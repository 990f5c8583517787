"""`GET /v1/jobs`: one tenant's jobs of every kind, newest first, a page at a time."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from functions.api.schemas.common import ApiTime

# What a job is to a client: the custom-models API's predictions are generations recorded with their
# scale configs, told apart here because they are read (and canceled) at their own URL.
HistoryKind = Literal["generation", "prediction", "training", "portrait"]
HISTORY_KINDS: tuple[HistoryKind, ...] = ("generation", "prediction", "training", "portrait")
DEFAULT_HISTORY_LIMIT = 20
MAX_HISTORY_LIMIT = 100


class JobSummary(BaseModel):
    """One job in the history: what it is, where it is, and where to read all of it."""

    id: str = Field(description="The job's id (a generation's jobId, a predictionId, a trainingId, a portraitId).")
    kind: HistoryKind
    status: str = Field(
        description="The job's status in the service's own words: generation and prediction `queued`, "
        "`processing`, `completed`, `failed`, `canceled`; training `queued`, `running`, `succeeded`, `failed`, "
        "`canceled`; portrait `training`, `generating`, `completed`, `failed`, `canceled`."
    )
    createdAt: ApiTime
    updatedAt: ApiTime
    completedAt: ApiTime | None = None
    modelId: str | None = Field(default=None, description="The model the job uses or trains.")
    portraitId: str | None = Field(default=None, description="The portrait a generation or training is part of.")
    url: str = Field(description="The job's own resource, e.g. `/v1/images/jobs/{id}`.")


class JobHistory(BaseModel):
    """A page of the tenant's jobs, newest first."""

    data: list[JobSummary]
    nextCursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; absent when this page is the last."
    )
