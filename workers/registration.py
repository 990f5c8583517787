"""A worker's record in the workers table (what `lorafoundry status` lists as live workers): written at start,
refreshed every LF_WORKER_REGISTRY_INTERVAL_SECONDS with the worker's state and the job in hand, valid for three
intervals (a killed worker drops out by itself), deleted on a clean stop.

A failed write is logged and retried at the next interval: the registry informs operators, it guards no job."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from events.records.base import now_iso
from events.records.workers import WorkerRecord
from events.states import WorkerKind
from infra.repositories.workers import WorkerRepository
from workers.consumer import Route

log = logging.getLogger(__name__)

REGISTRY_TASK = "worker registration"
# A record outlives this many missed refreshes before the worker is taken for dead.
EXPIRY_INTERVALS = 3
# How long a stop waits for the record's deletion.
STOP_TIMEOUT_S = 5.0


class CurrentJob:
    """The id of the job a worker's handler is running (the event's subject), or None between jobs."""

    def __init__(self) -> None:
        self.job_id: str | None = None

    def tracking(self, routes: dict[str, Route]) -> dict[str, Route]:
        """The same routes, each noting its job while it runs."""

        def wrap(handle: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
            async def tracked(event: Any) -> None:
                self.job_id = getattr(event, "subject", None)
                try:
                    await handle(event)
                finally:
                    self.job_id = None

            return tracked

        return {event_type: Route(route.model, wrap(route.handle)) for event_type, route in routes.items()}


class WorkerRegistration:
    """Keeps one worker's record fresh while `kept()` runs."""

    def __init__(
        self,
        repository: WorkerRepository,
        *,
        worker_id: str,
        kind: WorkerKind,
        group: str,
        interval_s: float,
        state: Callable[[], str],
        current_job: CurrentJob,
        metrics_url: Callable[[], str | None] = lambda: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.repository = repository
        self.worker_id = worker_id
        self.kind = kind
        self.group = group
        self.interval_s = interval_s
        self.state = state
        self.current_job = current_job
        self.metrics_url = metrics_url
        self.clock = clock
        self.started_at = now_iso()
        self._nudged = asyncio.Event()

    def nudge(self) -> None:
        """Refresh the record now rather than at the next interval (the worker became ready)."""
        self._nudged.set()

    def record(self) -> WorkerRecord:
        """The record as of now."""
        return WorkerRecord(
            workerId=self.worker_id,
            kind=self.kind,
            group=self.group,
            host=socket.gethostname(),
            pid=os.getpid(),
            state=self.state(),
            jobId=self.current_job.job_id,
            metricsUrl=self.metrics_url(),
            startedAt=self.started_at,
            heartbeatAt=now_iso(),
            expiresAt=self.clock() + EXPIRY_INTERVALS * self.interval_s,
        )

    async def refresh(self) -> bool:
        """Write the record now; False (logged) when the table could not be written."""
        try:
            await self.repository.put(self.record())
        except Exception as exc:  # any client error: the next refresh tries again
            log.warning("could not refresh the record of worker %s: %s", self.worker_id, exc)
            return False
        return True

    @contextlib.asynccontextmanager
    async def kept(self) -> AsyncIterator[None]:
        """Register, then refresh every interval while the block runs, then delete the record. The writes run
        beside the block, never in its way: a table that does not answer delays no worker's start or stop by
        more than STOP_TIMEOUT_S."""

        async def keep() -> None:
            while True:
                await self.refresh()
                # The refresh period (or a nudge), not a synchronisation.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._nudged.wait(), self.interval_s)
                self._nudged.clear()

        task = asyncio.create_task(keep(), name=REGISTRY_TASK)
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            try:
                await asyncio.wait_for(self.repository.delete(self.worker_id), STOP_TIMEOUT_S)
            except Exception as exc:  # the record then expires by itself
                log.warning("could not delete the record of worker %s: %s", self.worker_id, exc)
