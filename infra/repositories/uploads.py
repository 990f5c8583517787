"""Uploads: an image a client sends (directly, or to a presigned URL), validated once, kept for a while.

An upload is `pending` until its bytes are validated, then `ready` or `rejected` (with the reason). The move out
of `pending` is a conditional write, so a notification delivered twice validates once. Records carry
`expiresAt` (epoch seconds) for DynamoDB's TTL; reads treat an expired record as gone, since TTL deletes late.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from events.envelope import utcnow
from infra.repositories.dynamo import from_item, is_condition_failure, serialize, to_item


class UploadStatus(StrEnum):
    """Where an upload stands."""

    PENDING = "pending"
    READY = "ready"
    REJECTED = "rejected"


class UploadPurpose(StrEnum):
    """What an upload is for: a model's training image, or a free-standing image key (the headshot API)."""

    TRAINING_DATA = "training-data"
    IMAGE = "image"


class UploadRepository:
    """Reads and writes of upload records."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self.dynamodb = dynamodb
        self.table = table

    async def create(self, record: dict[str, Any], expires_in_s: int) -> dict[str, Any]:
        """Record a new upload (its id must be fresh)."""
        now = utcnow()
        expires = int(time.time()) + expires_in_s
        full = {
            **record,
            "createdAt": now.isoformat(),
            "updatedAt": now.isoformat(),
            "expiresAt": expires,
        }
        await self.dynamodb.put_item(
            TableName=self.table, Item=to_item(full), ConditionExpression="attribute_not_exists(uploadId)"
        )
        return full

    async def get(self, upload_id: str) -> dict[str, Any] | None:
        """One live upload, or None (absent or expired)."""
        response = await self.dynamodb.get_item(
            TableName=self.table, Key=to_item({"uploadId": upload_id}), ConsistentRead=True
        )
        item = response.get("Item")
        if not item:
            return None
        record = from_item(item)
        return None if record["expiresAt"] <= time.time() else record

    async def get_for_tenant(self, tenant_id: str, upload_id: str) -> dict[str, Any] | None:
        """The caller's live upload, or None: another tenant's looks the same as none."""
        record = await self.get(upload_id)
        return record if record and record["tenantId"] == tenant_id else None

    async def settle(self, upload_id: str, status: UploadStatus, fields: dict[str, Any]) -> dict[str, Any] | None:
        """Move a pending upload to `status` with `fields`; None if it is not pending any more."""
        values = {**fields, "status": status.value, "updatedAt": utcnow().isoformat()}
        names = {f"#f{i}": name for i, name in enumerate(values)}
        try:
            response = await self.dynamodb.update_item(
                TableName=self.table,
                Key=to_item({"uploadId": upload_id}),
                UpdateExpression="SET " + ", ".join(f"#f{i} = :v{i}" for i in range(len(values))),
                ConditionExpression="#status = :pending",
                ExpressionAttributeNames={**names, "#status": "status"},
                ExpressionAttributeValues={
                    **{f":v{i}": serialize(value) for i, value in enumerate(values.values())},
                    ":pending": serialize(UploadStatus.PENDING.value),
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return None
            raise
        return from_item(response["Attributes"])


def expires_at_iso(record: dict[str, Any]) -> str:
    """An upload's expiry as an ISO 8601 time."""
    return datetime.fromtimestamp(record["expiresAt"], UTC).isoformat()
