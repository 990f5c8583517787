"""Uploads: an image a client sends (directly, or to a presigned URL), validated once, kept for a while.

An upload is `pending` until its bytes are validated, then `ready` or `rejected` (with the reason). The move out
of `pending` is a conditional write, so a notification delivered twice validates once. Records carry
`expiresAt` (epoch seconds) for DynamoDB's TTL; reads treat an expired record as gone, since TTL deletes late.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from events.envelope import utcnow
from events.records.uploads import UploadPurpose, UploadRecord
from events.states import UploadStatus
from infra.repositories.dynamo import declared_fields, from_item, is_condition_failure, record_item, serialize, to_item

__all__ = ["UploadPurpose", "UploadRecord", "UploadRepository", "UploadStatus", "expires_at_iso"]


class UploadRepository:
    """Reads and writes of upload records."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self.dynamodb = dynamodb
        self.table = table

    async def create(self, record: UploadRecord, expires_in_s: int) -> UploadRecord:
        """Record a new upload (its id must be fresh), created now and expiring in `expires_in_s`."""
        now = utcnow().isoformat()
        full = record.model_copy(
            update={"createdAt": now, "updatedAt": now, "expiresAt": int(time.time()) + expires_in_s}
        )
        await self.dynamodb.put_item(
            TableName=self.table, Item=record_item(full), ConditionExpression="attribute_not_exists(uploadId)"
        )
        return full

    async def get(self, upload_id: str) -> UploadRecord | None:
        """One live upload, or None (absent or expired)."""
        response = await self.dynamodb.get_item(
            TableName=self.table, Key=to_item({"uploadId": upload_id}), ConsistentRead=True
        )
        item = response.get("Item")
        if not item:
            return None
        record = UploadRecord.model_validate(from_item(item))
        return None if record.expiresAt <= time.time() else record

    async def get_for_tenant(self, tenant_id: str, upload_id: str) -> UploadRecord | None:
        """The caller's live upload, or None: another tenant's looks the same as none."""
        record = await self.get(upload_id)
        return record if record and record.tenantId == tenant_id else None

    async def settle(self, upload_id: str, status: UploadStatus, fields: Mapping[str, Any]) -> UploadRecord | None:
        """Move a pending upload to `status` with `fields` (declared upload fields: ValueError otherwise);
        None if it is not pending any more."""
        values = declared_fields((UploadRecord,), {**fields, "status": status.value, "updatedAt": utcnow().isoformat()})
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
        return UploadRecord.model_validate(from_item(response["Attributes"]))


def expires_at_iso(record: UploadRecord) -> str:
    """An upload's expiry as an ISO 8601 time."""
    return datetime.fromtimestamp(record.expiresAt, UTC).isoformat()
