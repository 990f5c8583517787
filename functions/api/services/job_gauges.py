"""JOBS_BY_STATUS for the API's `/metrics`: queued and running jobs of each kind, read from the sparse queue
indexes when a scrape comes and at most every REFRESH_SECONDS (scrapers poll every few seconds; the counts need
not be fresher). Terminal counts would take a Scan of the whole table: `lorafoundry status` shows them instead."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from infra.metrics import JOBS_BY_STATUS
from infra.repositories.status_counts import count_active

log = logging.getLogger(__name__)

REFRESH_SECONDS = 15.0


class JobGauges:
    """Refreshes JOBS_BY_STATUS from the jobs table, no more often than every `refresh_seconds`."""

    def __init__(self, refresh_seconds: float = REFRESH_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self._refreshed_at: float | None = None
        self._lock = asyncio.Lock()

    def due(self) -> bool:
        """Whether the gauges are older than the refresh period (or were never set)."""
        return self._refreshed_at is None or self.clock() - self._refreshed_at >= self.refresh_seconds

    async def refresh(self, dynamodb: Any, table: str) -> bool:
        """Count again if due; False when the table could not be read (the gauges keep their last values)."""
        if not self.due():
            return True
        async with self._lock:  # concurrent scrapes: one counts, the others find it fresh
            if not self.due():
                return True
            try:
                counts = await count_active(dynamodb, table)
            except Exception as exc:  # DynamoDB away: the scrape still answers with what the process has
                log.warning("could not count the jobs for the metrics: %s", exc)
                return False
            for (kind, status), count in counts.items():
                JOBS_BY_STATUS.labels(kind=kind, status=status).set(count)
            self._refreshed_at = self.clock()
            return True
