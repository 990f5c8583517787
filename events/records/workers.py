"""Live workers: each GPU worker keeps a record of itself fresh while it lives; the table's TTL forgets the dead."""

from __future__ import annotations

from pydantic import Field

from events.records.base import IsoTime, StoredRecord, now_iso
from events.states import WorkerKind


class WorkerRecord(StoredRecord):
    """One worker process, refreshed every LF_WORKER_REGISTRY_INTERVAL_SECONDS while it runs."""

    workerId: str = Field(min_length=1, description="The worker's id (the table's key; the lease owner of its jobs).")
    kind: WorkerKind = Field(description="generator, or trainer.")
    group: str = Field(description="The consumer group it reads its commands in.")
    host: str = Field(description="The host it runs on.")
    pid: int = Field(ge=0, description="Its process id on that host.")
    state: str = Field(description="Its WorkerState (ready, busy, stopping).")
    jobId: str | None = Field(default=None, description="The job it is running, if any.")
    metricsUrl: str | None = Field(default=None, description="Where its Prometheus metrics are served, if they are.")
    startedAt: IsoTime = Field(default_factory=now_iso, description="When it started.")
    heartbeatAt: IsoTime = Field(default_factory=now_iso, description="When it last refreshed this record.")
    expiresAt: float = Field(description="Epoch seconds after which it is taken for dead (the table's TTL).")
