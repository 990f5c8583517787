"""Idempotency records: the first request with a key claims it by a conditional write, later ones find it.

A record is `in_progress` while its first request runs (with a lock that lapses, so a request that died
does not hold the key forever) and `completed` with the stored response after. Reads treat a record past
`expiresAt` as absent, because DynamoDB's TTL deletes late (and moto never does).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from infra.repositories.dynamo import from_item, is_condition_failure, serialize, to_item


class IdempotencyStatus(StrEnum):
    """Where the first request of a key is."""

    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


@dataclass(frozen=True)
class StoredResponse:
    """The first request's response, replayed to every repeat."""

    status: int
    headers: dict[str, str]
    body: str


@dataclass(frozen=True)
class IdempotencyRecord:
    """What is known about a key."""

    fingerprint: str
    status: IdempotencyStatus
    response: StoredResponse | None


@dataclass(frozen=True)
class Claim:
    """The outcome of a claim: owned by this request, or held by another (`record`; None if it was released
    or expired in between, so the next claim may take it)."""

    owned: bool
    record: IdempotencyRecord | None


def _record(raw: dict[str, Any]) -> IdempotencyRecord | None:
    """A stored item as a record; None once past `expiresAt`."""
    item = from_item(raw)
    if int(item["expiresAt"]) < time.time():
        return None
    stored = item.get("response")
    return IdempotencyRecord(
        fingerprint=item["fingerprint"],
        status=IdempotencyStatus(item["status"]),
        response=StoredResponse(int(stored["status"]), dict(stored["headers"]), stored["body"]) if stored else None,
    )


class IdempotencyRepository:
    """Idempotency keys, scoped by the caller (tenant) and the endpoint."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self.dynamodb = dynamodb
        self.table = table

    async def claim(self, scope: str, fingerprint: str, ttl_seconds: int, lock_seconds: int) -> Claim:
        """Claim `scope` for a first request, in one conditional write: owned if this call holds it now (no
        live record, an expired one, or an in-progress one whose lock lapsed); else the record that holds it,
        returned by the failed write itself, so a repeat costs one round trip."""
        now = int(time.time())
        item = {
            "scope": scope,
            "fingerprint": fingerprint,
            "status": IdempotencyStatus.IN_PROGRESS.value,
            "lockedUntil": now + lock_seconds,
            "expiresAt": now + ttl_seconds,
        }
        try:
            await self.dynamodb.put_item(
                TableName=self.table,
                Item=to_item(item),
                ConditionExpression=(
                    "attribute_not_exists(#scope) OR expiresAt < :now "
                    "OR (#status = :in_progress AND lockedUntil < :now)"
                ),
                ExpressionAttributeNames={"#scope": "scope", "#status": "status"},
                ExpressionAttributeValues={
                    ":now": serialize(now),
                    ":in_progress": serialize(IdempotencyStatus.IN_PROGRESS.value),
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            held = exc.response.get("Item")
            # A store that does not return the item on a failed condition costs one more read.
            return Claim(False, _record(held) if held else await self.get(scope))
        return Claim(True, None)

    async def get(self, scope: str) -> IdempotencyRecord | None:
        """The live record of `scope`, if any."""
        response = await self.dynamodb.get_item(
            TableName=self.table, Key={"scope": serialize(scope)}, ConsistentRead=True
        )
        return _record(response["Item"]) if "Item" in response else None

    async def complete(self, scope: str, fingerprint: str, response: StoredResponse) -> None:
        """Store the first request's response (only the claimant, identified by its fingerprint, does)."""
        await self.dynamodb.update_item(
            TableName=self.table,
            Key={"scope": serialize(scope)},
            UpdateExpression="SET #status = :completed, #response = :response REMOVE lockedUntil",
            ConditionExpression="fingerprint = :fingerprint",
            ExpressionAttributeNames={"#status": "status", "#response": "response"},
            ExpressionAttributeValues={
                ":completed": serialize(IdempotencyStatus.COMPLETED.value),
                ":response": serialize({"status": response.status, "headers": response.headers, "body": response.body}),
                ":fingerprint": serialize(fingerprint),
            },
        )

    async def release(self, scope: str) -> None:
        """Forget a claim whose request failed on our side, so a retry with the same key runs again."""
        await self.dynamodb.delete_item(TableName=self.table, Key={"scope": serialize(scope)})
