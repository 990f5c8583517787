"""How many jobs a tenant has queued or running (its quotas), counted on the jobs table's sparse indexes
(`byQueue` holds only waiting jobs, `byInFlight` only held ones), so a count costs what the whole system has
active, never a tenant's history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from events.envelope import utcnow
from events.states import JobKind
from infra.repositories.dynamo import count_all_pages, query_all, serialize
from infra.repositories.jobs import IN_FLIGHT_ATTRIBUTE, QUEUE_ATTRIBUTE, QUEUE_FOR_KIND
from infra.resources import JOBS_IN_FLIGHT_INDEX, JOBS_QUEUE_INDEX


class JobCountRepository:
    """Counts of active jobs per tenant and kind."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self.dynamodb = dynamodb
        self.table = table

    async def _count(self, index: str, attribute: str, kind: JobKind, tenant_id: str) -> int:
        partition = QUEUE_FOR_KIND[kind]
        mine = "tenantId = :t"
        if kind is JobKind.GENERATION:
            # A portrait's generations are queued by the service, not the caller: its training counts for it.
            mine += " AND attribute_not_exists(portraitId)"
        return await count_all_pages(
            self.dynamodb,
            TableName=self.table,
            IndexName=index,
            KeyConditionExpression="#part = :p",
            FilterExpression=mine,
            ExpressionAttributeNames={"#part": attribute},
            ExpressionAttributeValues={":p": serialize(partition), ":t": serialize(tenant_id)},
        )

    async def active(self, tenant_id: str, kind: JobKind) -> int:
        """The tenant's jobs of `kind` queued or running. The claim moves a job from one index to the other in
        one write; a count that reads both while it happens may be off by one (the limits are soft)."""
        queued = await self._count(JOBS_QUEUE_INDEX, QUEUE_ATTRIBUTE, kind, tenant_id)
        running = await self._count(JOBS_IN_FLIGHT_INDEX, IN_FLIGHT_ATTRIBUTE, kind, tenant_id)
        return queued + running

    async def soonest_end_s(self, tenant_id: str, kind: JobKind) -> float | None:
        """Seconds until the first of the tenant's running jobs of `kind` is expected to end, from the estimate
        each carries (trainings do); None when none says. Read only when a request is refused."""
        items = await query_all(
            self.dynamodb,
            TableName=self.table,
            IndexName=JOBS_IN_FLIGHT_INDEX,
            KeyConditionExpression="#part = :p",
            FilterExpression="tenantId = :t AND attribute_exists(estimatedSeconds)",
            ProjectionExpression="startedAt, estimatedSeconds",
            ExpressionAttributeNames={"#part": IN_FLIGHT_ATTRIBUTE},
            ExpressionAttributeValues={":p": serialize(QUEUE_FOR_KIND[kind]), ":t": serialize(tenant_id)},
        )
        now = utcnow()
        ends = [
            datetime.fromisoformat(job["startedAt"]).timestamp() + float(job["estimatedSeconds"]) - now.timestamp()
            for job in items
            if job.get("startedAt") and job.get("estimatedSeconds") is not None
        ]
        return min(ends) if ends else None
