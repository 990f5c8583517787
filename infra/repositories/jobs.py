"""Jobs in DynamoDB: created queued, then moved only by conditional, versioned writes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from events.envelope import utcnow
from events.states import GENERATION, GenerationStatus, StateMachine
from infra.repositories.dynamo import from_item, is_condition_failure, serialize, to_item


class JobExists(Exception):
    """A job with this id was already created."""


class StaleWrite(Exception):
    """A conditional write lost: the job changed since it was read."""


class AdvanceOutcome(StrEnum):
    """What an attempt to move a job to a status did."""

    APPLIED = "applied"
    ALREADY = "already"  # the job was already in the target status (a duplicate)
    REJECTED = "rejected"  # the state machine forbids it (out of order, or terminal)
    MISSING = "missing"


@dataclass(frozen=True)
class Advance:
    """The outcome of `JobRepository.advance`, with the job as it now stands."""

    outcome: AdvanceOutcome
    job: dict[str, Any] | None


class JobRepository:
    """Reads and conditional writes of job items."""

    def __init__(self, dynamodb: Any, table: str, machine: StateMachine = GENERATION) -> None:
        self.dynamodb = dynamodb
        self.table = table
        self.machine = machine

    async def create(self, job: dict[str, Any]) -> dict[str, Any]:
        """Insert a new job in the machine's initial state; raises JobExists if the id is taken."""
        now = utcnow().isoformat()
        record = {**job, "status": self.machine.initial.value, "version": 1, "createdAt": now, "updatedAt": now}
        try:
            await self.dynamodb.put_item(
                TableName=self.table,
                Item=to_item(record),
                ConditionExpression="attribute_not_exists(jobId)",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise JobExists(job["jobId"]) from exc
            raise
        return record

    async def get(self, job_id: str) -> dict[str, Any] | None:
        """A job by id, strongly consistent, whoever owns it (for internal callers only)."""
        response = await self.dynamodb.get_item(
            TableName=self.table, Key=to_item({"jobId": job_id}), ConsistentRead=True
        )
        item = response.get("Item")
        return from_item(item) if item else None

    async def get_for_tenant(self, tenant_id: str, job_id: str) -> dict[str, Any] | None:
        """A job only if it belongs to `tenant_id`: another tenant's job is indistinguishable from none."""
        job = await self.get(job_id)
        if job is None or job.get("tenantId") != tenant_id:
            return None
        return job

    async def _update(
        self, job_id: str, sets: dict[str, Any], condition: str, values: dict[str, Any], extra: str = ""
    ) -> dict[str, Any]:
        names = {f"#f{i}": name for i, name in enumerate(sets)}
        expr_values = {f":f{i}": serialize(value) for i, value in enumerate(sets.values())}
        expr_values.update({k: serialize(v) for k, v in values.items()})
        set_clause = ", ".join(f"#f{i} = :f{i}" for i in range(len(sets)))
        try:
            response = await self.dynamodb.update_item(
                TableName=self.table,
                Key=to_item({"jobId": job_id}),
                UpdateExpression=f"SET {set_clause}, #version = #version + :one{extra}",
                ConditionExpression=condition,
                ExpressionAttributeNames={**names, "#version": "version", "#status": "status"},
                ExpressionAttributeValues={**expr_values, ":one": serialize(1)},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise StaleWrite(job_id) from exc
            raise
        return from_item(response["Attributes"])

    async def transition(
        self, job_id: str, target: StrEnum, *, expected_version: int, fields: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Move a job to `target` if it is still at `expected_version` in an allowed predecessor state."""
        predecessors = sorted(s.value for s in self.machine.allowed_predecessors(target))
        placeholders = {f":p{i}": p for i, p in enumerate(predecessors)}
        condition = f"#version = :expected AND #status IN ({', '.join(placeholders)})"
        sets = {**(fields or {}), "status": target.value, "updatedAt": utcnow().isoformat()}
        sets = {k: v for k, v in sets.items() if v is not None}
        return await self._update(job_id, sets, condition, {":expected": expected_version, **placeholders})

    async def advance(
        self, job_id: str, target: StrEnum, fields: dict[str, Any] | None = None, attempts: int = 5
    ) -> Advance:
        """Read-check-write until the move is applied, found duplicate, or refused by the state machine."""
        for _ in range(attempts):
            job = await self.get(job_id)
            if job is None:
                return Advance(AdvanceOutcome.MISSING, None)
            current = type(target)(job["status"])
            if current == target and self.machine.is_terminal(current):
                return Advance(AdvanceOutcome.ALREADY, job)
            if not self.machine.can_transition(current, target):
                return Advance(AdvanceOutcome.REJECTED, job)
            try:
                updated = await self.transition(job_id, target, expected_version=job["version"], fields=fields)
            except StaleWrite:
                continue  # Someone else moved it first: read again and decide again.
            return Advance(AdvanceOutcome.APPLIED, updated)
        raise StaleWrite(job_id)

    async def claim(self, job_id: str, worker_id: str, lease_seconds: int) -> dict[str, Any] | None:
        """Take a queued job, or a processing one whose lease lapsed; None if someone else holds it."""
        now = utcnow()
        sets = {
            "status": GenerationStatus.PROCESSING.value,
            "leaseOwner": worker_id,
            "leaseExpiresAt": now.timestamp() + lease_seconds,
            "updatedAt": now.isoformat(),
        }
        # The same worker may re-claim (a redelivery to the owner after a restart with the same id).
        condition = "#status = :queued OR (#status = :processing AND (leaseExpiresAt < :now OR leaseOwner = :me))"
        values = {
            ":queued": GenerationStatus.QUEUED.value,
            ":processing": GenerationStatus.PROCESSING.value,
            ":now": now.timestamp(),
            ":me": worker_id,
            ":zero": 0,
            ":started": now.isoformat(),
        }
        try:
            return await self._update(
                job_id,
                sets,
                condition,
                values,
                extra=", attempts = if_not_exists(attempts, :zero) + :one, "
                "startedAt = if_not_exists(startedAt, :started)",
            )
        except StaleWrite:
            return None

    async def renew_lease(self, job_id: str, worker_id: str, lease_seconds: int) -> bool:
        """Extend a held lease; False if the job is no longer this worker's."""
        try:
            await self._update(
                job_id,
                {"leaseExpiresAt": utcnow().timestamp() + lease_seconds},
                "#status = :processing AND leaseOwner = :me",
                {":processing": GenerationStatus.PROCESSING.value, ":me": worker_id},
            )
        except StaleWrite:
            return False
        return True

    async def mark_published(self, job_id: str, status: str) -> None:
        """Record that the lifecycle event of `status` reached Kafka (so a redelivery need not resend it)."""
        await self.dynamodb.update_item(
            TableName=self.table,
            Key=to_item({"jobId": job_id}),
            UpdateExpression="ADD publishedEvents :s",
            ExpressionAttributeValues={":s": {"SS": [status]}},
        )
