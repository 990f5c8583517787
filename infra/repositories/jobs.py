"""Jobs (generations and trainings) in DynamoDB: claimed with a lease, moved by conditional writes."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from events.envelope import utcnow
from events.states import GENERATION, GenerationStatus, StateMachine
from infra.repositories.dynamo import is_condition_failure, query_all, serialize
from infra.repositories.versioned import (
    Advance,
    AdvanceOutcome,
    RecordExists,
    StaleWrite,
    VersionedRepository,
)
from infra.resources import JOBS_BY_MODEL_INDEX, JOBS_IN_FLIGHT_INDEX, JOBS_QUEUE_INDEX

JobExists = RecordExists

# Set on a job while it waits (sparse index: claimed and finished jobs drop out of it).
QUEUE_ATTRIBUTE = "queue"
# Set on a job while a worker holds it (sparse index: where the reconciler looks for lapsed leases).
IN_FLIGHT_ATTRIBUTE = "inFlight"
JOB_QUEUE_TRAINING = "training"
JOB_QUEUE_GENERATION = "generation"

__all__ = ["Advance", "AdvanceOutcome", "JobExists", "JobRepository", "StaleWrite"]


class JobRepository(VersionedRepository):
    """Reads and conditional writes of job items."""

    key_name = "jobId"

    def __init__(
        self,
        dynamodb: Any,
        table: str,
        machine: StateMachine = GENERATION,
        running: StrEnum = GenerationStatus.PROCESSING,
        queue: str = JOB_QUEUE_GENERATION,
    ) -> None:
        super().__init__(dynamodb, table, machine)
        self.running = running  # the status a claim moves a queued job to
        self.queue = queue  # the sparse indexes' partition for these jobs

    def fields_to_remove(self, target: StrEnum) -> tuple[str, ...]:
        """Leaving the queue drops `queue`, ending drops `inFlight`, so the sparse indexes hold only waiting
        and held jobs."""
        if target == self.machine.initial:
            return ()
        if self.machine.is_terminal(target):
            return (QUEUE_ATTRIBUTE, IN_FLIGHT_ATTRIBUTE)
        return (QUEUE_ATTRIBUTE,)

    def _waiting_query(self, queue: str, created_before: str) -> dict[str, Any]:
        """Query arguments for the jobs of `queue` still waiting that were created before `created_before`."""
        return {
            "TableName": self.table,
            "IndexName": JOBS_QUEUE_INDEX,
            "KeyConditionExpression": "#queue = :q AND createdAt < :c",
            "FilterExpression": "#status = :queued",
            "ExpressionAttributeNames": {"#queue": QUEUE_ATTRIBUTE, "#status": "status"},
            "ExpressionAttributeValues": {
                ":q": serialize(queue),
                ":c": serialize(created_before),
                ":queued": serialize(self.machine.initial.value),
            },
        }

    async def waiting_since_before(self, created_before: str) -> list[dict[str, Any]]:
        """Jobs of this queue still waiting that were created before `created_before` (ISO time)."""
        return await query_all(self.dynamodb, **self._waiting_query(self.queue, created_before))

    async def lease_lapsed(self, now_ts: float) -> list[dict[str, Any]]:
        """Jobs of this queue held by a worker whose lease ended before `now_ts` (epoch seconds)."""
        return await query_all(
            self.dynamodb,
            TableName=self.table,
            IndexName=JOBS_IN_FLIGHT_INDEX,
            KeyConditionExpression="#flight = :q",
            FilterExpression="#status = :running AND leaseExpiresAt < :now",
            ExpressionAttributeNames={"#flight": IN_FLIGHT_ATTRIBUTE, "#status": "status"},
            ExpressionAttributeValues={
                ":q": serialize(self.queue),
                ":running": serialize(self.running.value),
                ":now": serialize(now_ts),
            },
        )

    async def count_queued_before(self, created_at: str, queue: str = JOB_QUEUE_TRAINING) -> int:
        """How many jobs of `queue` still wait that were created before `created_at` (all tenants)."""
        total = 0
        kwargs = {**self._waiting_query(queue, created_at), "Select": "COUNT"}
        while True:
            response = await self.dynamodb.query(**kwargs)
            total += response.get("Count", 0)
            if "LastEvaluatedKey" not in response:
                return total
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    async def claim(self, job_id: str, worker_id: str, lease_seconds: int) -> dict[str, Any] | None:
        """Take a queued job, or a processing one whose lease lapsed; None if someone else holds it."""
        now = utcnow()
        sets = {
            "status": self.running.value,
            IN_FLIGHT_ATTRIBUTE: self.queue,
            "leaseOwner": worker_id,
            "leaseExpiresAt": now.timestamp() + lease_seconds,
            "updatedAt": now.isoformat(),
        }
        # The same worker may re-claim (a redelivery to the owner after a restart with the same id).
        condition = "#status = :queued OR (#status = :processing AND (leaseExpiresAt < :now OR leaseOwner = :me))"
        values = {
            ":queued": self.machine.initial.value,
            ":processing": self.running.value,
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
                remove=(QUEUE_ATTRIBUTE,),
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
                {":processing": self.running.value, ":me": worker_id},
            )
        except StaleWrite:
            return False
        return True

    async def record_progress(self, job_id: str, progress: dict[str, Any]) -> bool:
        """Store a progress snapshot if its `seq` is newer than the one recorded (reordered notifications lose)."""
        try:
            await self._update(
                job_id,
                {"progress": progress, "progressSeq": progress["seq"]},
                "attribute_exists(jobId) AND (attribute_not_exists(progressSeq) OR progressSeq < :seq)",
                {":seq": progress["seq"]},
            )
        except StaleWrite:
            return False
        return True

    async def record_epoch(self, job_id: str, epoch: str, info: dict[str, Any]) -> bool:
        """Add (or overwrite, on a duplicate notification) one finished epoch; False if the job is unknown."""
        try:
            await self.dynamodb.update_item(
                TableName=self.table,
                Key=self._key(job_id),
                UpdateExpression="SET epochs.#e = :v, #version = #version + :one",
                ConditionExpression="attribute_exists(epochs)",
                ExpressionAttributeNames={"#e": epoch, "#version": "version"},
                ExpressionAttributeValues={":v": serialize(info), ":one": serialize(1)},
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    async def list_for_model(self, model_id: str, kind: str) -> list[dict[str, Any]]:
        """Every job of one kind for a model, newest first (callers check the tenant)."""
        items = await query_all(
            self.dynamodb,
            TableName=self.table,
            IndexName=JOBS_BY_MODEL_INDEX,
            KeyConditionExpression="modelId = :m",
            FilterExpression="#kind = :k",
            ExpressionAttributeNames={"#kind": "kind"},
            ExpressionAttributeValues={":m": serialize(model_id), ":k": serialize(kind)},
            ScanIndexForward=False,
        )
        return items

    async def mark_published(self, job_id: str, status: str) -> None:
        """Record that the lifecycle event of `status` reached Kafka (so a redelivery need not resend it)."""
        await self.dynamodb.update_item(
            TableName=self.table,
            Key=self._key(job_id),
            UpdateExpression="ADD publishedEvents :s",
            ExpressionAttributeValues={":s": {"SS": [status]}},
        )
