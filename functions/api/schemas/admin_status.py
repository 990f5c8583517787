"""The operator's view of a deployment, `GET /v1/admin/status` (what `lorafoundry status` prints)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from events.records.workers import WorkerRecord


class ComponentOut(BaseModel):
    """One component the API depends on (or the API itself), as seen from the API."""

    name: str = Field(description="api, dynamodb, s3 or kafka.")
    ok: bool = Field(description="Whether it answered.")
    latencyMs: float | None = Field(default=None, description="How long its check took, in milliseconds.")
    detail: str | None = Field(default=None, description="What was checked, or the error when it failed.")


class LagOut(BaseModel):
    """One consumer group's lag on the topic it reads."""

    group: str = Field(description="The consumer group.")
    topic: str = Field(description="The topic it reads.")
    lag: int = Field(ge=0, description="Records it has still to read (end offsets minus its committed offsets).")


class JobCountOut(BaseModel):
    """How many jobs of one kind are in one status."""

    kind: str
    status: str
    count: int = Field(ge=0)


class JobCountsOut(BaseModel):
    """Jobs by kind and status."""

    counts: list[JobCountOut] = Field(description="Every kind and status that has jobs (and queued, running).")
    complete: bool = Field(description="False when the count stopped at its bound: the counts are lower bounds.")


class StatusOut(BaseModel):
    """A deployment's state: components, consumer lag, jobs, live workers."""

    ok: bool = Field(description="Whether every component answered.")
    components: list[ComponentOut]
    consumerLag: list[LagOut] = Field(description="Each worker and lifecycle consumer group's lag (empty: Kafka down).")
    lagError: str | None = Field(default=None, description="Why the lag could not be measured, if it could not.")
    jobs: JobCountsOut | None = Field(default=None, description="Jobs by kind and status (absent: DynamoDB down).")
    workers: list[WorkerRecord] = Field(description="Workers whose registry record is fresh.")
