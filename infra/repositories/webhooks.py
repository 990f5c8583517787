"""Webhook signing secrets (per tenant, rotatable) and deliveries (per job, with their persisted schedule).

A delivery waiting for an attempt carries `due = "pending"` and `nextAttemptAt`, indexed together: the sweep
finds what is due with one query, and a restarted dispatcher finds every pending retry where it left it.
Taking a delivery moves `nextAttemptAt` forward by a lease with a conditional write, so two dispatchers
never send the same attempt, and one that dies mid-attempt leaves it due again when the lease ends.
"""

from __future__ import annotations

import base64
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from events.records.webhooks import PENDING_PARTITION, DeliveryAttempt, DeliveryRecord, WebhookSecretRecord
from events.states import DeliveryStatus
from infra.repositories.dynamo import from_item, is_condition_failure, query_all, record_item, serialize
from infra.resources import DELIVERIES_DUE_INDEX

SECRET_PREFIX = "whsec_"
PENDING = PENDING_PARTITION


def schedule_time(at: datetime) -> str:
    """A time as the schedule stores it: UTC, fixed width, so strings sort as times do."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_signing_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


class WebhookSecretRepository:
    """Each tenant's signing secret, and during a rotation its previous one."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self.dynamodb = dynamodb
        self.table = table

    async def _read(self, tenant_id: str) -> WebhookSecretRecord | None:
        response = await self.dynamodb.get_item(
            TableName=self.table, Key={"tenantId": serialize(tenant_id)}, ConsistentRead=True
        )
        return WebhookSecretRecord.model_validate(from_item(response["Item"])) if "Item" in response else None

    async def current(self, tenant_id: str) -> WebhookSecretRecord:
        """The tenant's secrets record, made on first use: `secret`, and `previous` until `previousUntil`."""
        record = await self._read(tenant_id)
        if record is not None:
            return record
        record = WebhookSecretRecord(tenantId=tenant_id, secret=new_signing_secret(), createdAt=int(time.time()))
        try:
            await self.dynamodb.put_item(
                TableName=self.table, Item=record_item(record), ConditionExpression="attribute_not_exists(tenantId)"
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            found = await self._read(tenant_id)  # made concurrently by another request: use that one
            assert found is not None
            return found
        return record

    async def signing_secrets(self, tenant_id: str) -> list[str]:
        """The secrets a delivery is signed with now: the current one, and the previous one during rotation."""
        record = await self.current(tenant_id)
        found = [record.secret]
        if record.previous and (record.previousUntil or 0) > time.time():
            found.append(record.previous)
        return found

    async def rotate(self, tenant_id: str, overlap_seconds: int) -> WebhookSecretRecord:
        """A new current secret; the old one keeps signing too for `overlap_seconds`, so receivers can switch."""
        old = await self.current(tenant_id)
        now = int(time.time())
        record = old.model_copy(
            update={
                "secret": new_signing_secret(),
                "previous": old.secret,
                "previousUntil": now + overlap_seconds,
                "rotatedAt": now,
            }
        )
        await self.dynamodb.put_item(TableName=self.table, Item=record_item(record))
        return record


class DeliveryRepository:
    """Deliveries of one job's events, with their attempts and schedule."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self.dynamodb = dynamodb
        self.table = table

    def _key(self, job_id: str, delivery_id: str) -> dict[str, Any]:
        return {"jobId": serialize(job_id), "deliveryId": serialize(delivery_id)}

    async def create(self, record: DeliveryRecord) -> bool:
        """Record a new pending delivery (due now, no attempts yet); False if it exists (a redelivered event)."""
        pending = record.model_copy(
            update={"status": DeliveryStatus.PENDING, "due": PENDING, "attempts": [], "scheduleStart": 0}
        )
        try:
            await self.dynamodb.put_item(
                TableName=self.table,
                Item=record_item(pending),
                ConditionExpression="attribute_not_exists(deliveryId)",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    async def get(self, job_id: str, delivery_id: str) -> DeliveryRecord | None:
        """One delivery."""
        response = await self.dynamodb.get_item(
            TableName=self.table, Key=self._key(job_id, delivery_id), ConsistentRead=True
        )
        return DeliveryRecord.model_validate(from_item(response["Item"])) if "Item" in response else None

    async def list_for_job(self, job_id: str) -> list[DeliveryRecord]:
        """A job's deliveries, oldest first."""
        items = await query_all(
            self.dynamodb,
            TableName=self.table,
            KeyConditionExpression="jobId = :j",
            ExpressionAttributeValues={":j": serialize(job_id)},
            ConsistentRead=True,
        )
        return sorted((DeliveryRecord.model_validate(i) for i in items), key=lambda d: d.createdAt)

    async def due(self, now: datetime, limit: int = 100) -> list[DeliveryRecord]:
        """Pending deliveries whose next attempt is due, soonest first."""
        response = await self.dynamodb.query(
            TableName=self.table,
            IndexName=DELIVERIES_DUE_INDEX,
            KeyConditionExpression="due = :p AND nextAttemptAt <= :now",
            ExpressionAttributeValues={":p": serialize(PENDING), ":now": serialize(schedule_time(now))},
            Limit=limit,
        )
        return [DeliveryRecord.model_validate(from_item(i)) for i in response.get("Items", [])]

    async def take(self, delivery: DeliveryRecord, lease_until: datetime) -> bool:
        """Claim the due attempt of `delivery` until `lease_until`; False if another dispatcher took it."""
        try:
            await self.dynamodb.update_item(
                TableName=self.table,
                Key=self._key(delivery.jobId, delivery.deliveryId),
                UpdateExpression="SET nextAttemptAt = :lease",
                ConditionExpression="due = :p AND nextAttemptAt = :expected",
                ExpressionAttributeValues={
                    ":lease": serialize(schedule_time(lease_until)),
                    ":p": serialize(PENDING),
                    ":expected": serialize(delivery.nextAttemptAt),
                },
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    async def record_attempt(
        self,
        delivery: DeliveryRecord,
        attempt: DeliveryAttempt,
        status: DeliveryStatus,
        next_attempt_at: datetime | None,
    ) -> None:
        """Append an attempt; keep the delivery pending until `next_attempt_at`, or close it with `status`."""
        values: dict[str, Any] = {
            ":attempt": serialize([attempt.model_dump(mode="json", exclude_none=True)]),
            ":status": serialize(DeliveryStatus(status).value),
        }
        if next_attempt_at is not None:
            expression = "SET attempts = list_append(attempts, :attempt), #status = :status, nextAttemptAt = :next"
            values[":next"] = serialize(schedule_time(next_attempt_at))
        else:
            expression = "SET attempts = list_append(attempts, :attempt), #status = :status REMOVE due, nextAttemptAt"
        await self.dynamodb.update_item(
            TableName=self.table,
            Key=self._key(delivery.jobId, delivery.deliveryId),
            UpdateExpression=expression,
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues=values,
        )

    async def reschedule(self, delivery: DeliveryRecord, at: datetime) -> DeliveryRecord:
        """Make a delivery pending again now (a re-send), with a fresh retry schedule."""
        response = await self.dynamodb.update_item(
            TableName=self.table,
            Key=self._key(delivery.jobId, delivery.deliveryId),
            UpdateExpression="SET due = :p, nextAttemptAt = :at, #status = :p, scheduleStart = :start",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":p": serialize(PENDING),
                ":at": serialize(schedule_time(at)),
                ":start": serialize(len(delivery.attempts)),
            },
            ReturnValues="ALL_NEW",
        )
        return DeliveryRecord.model_validate(from_item(response["Attributes"]))
