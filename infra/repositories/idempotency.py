"""Idempotency records: the first request with a key claims it by a conditional write, later ones find it.

A record is `in_progress` while its first request runs (with a lock that lapses, so a request that died
does not hold the key forever) and `completed` with the stored response after. Reads treat a record past
`expiresAt` as absent, because DynamoDB's TTL deletes late (and moto never does).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from events.records.idempotency import IdempotencyRecord, StoredResponse
from events.states import IdempotencyStatus
from infra.repositories.dynamo import from_item, is_condition_failure, record_item, serialize

__all__ = ["Claim", "IdempotencyRecord", "IdempotencyRepository", "IdempotencyStatus", "StoredResponse"]


@dataclass(frozen=True)
class Claim:
    """The outcome of a claim: owned by this request, or held by another (`record`; None if it was released
    or expired in between, so the next claim may take it)."""

    owned: bool
    record: IdempotencyRecord | None
    expires_at: int | None = None  # when an owned claim's record expires (kept when its response is stored)


def _takeable(item: dict[str, Any], now: int) -> bool:
    """Whether a record found in the way may be claimed anyway: expired, or in progress with a lapsed lock."""
    if int(item["expiresAt"]) < now:
        return True
    return item["status"] == IdempotencyStatus.IN_PROGRESS.value and int(item.get("lockedUntil", 0)) < now


def _record(raw: dict[str, Any]) -> IdempotencyRecord | None:
    """A stored item as a record; None once past `expiresAt`."""
    record = IdempotencyRecord.model_validate(from_item(raw))
    return None if record.expiresAt < time.time() else record


class IdempotencyRepository:
    """Idempotency keys, scoped by the caller (tenant) and the endpoint."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self.dynamodb = dynamodb
        self.table = table

    async def claim(self, scope: str, fingerprint: str, ttl_seconds: int, lock_seconds: int) -> Claim:
        """Claim `scope` for a first request: owned if this call holds it now (no live record, an expired
        one, or an in-progress one whose lock lapsed); else the record that holds it, returned by the failed
        write itself, so a repeat costs one round trip.

        The common case (a new key) is one write with the simplest condition; only a record found expired or
        with a lapsed lock is taken over by a second write, conditional on exactly that (two racing takeovers:
        one wins)."""
        now = int(time.time())
        item = record_item(
            IdempotencyRecord(
                scope=scope,
                fingerprint=fingerprint,
                status=IdempotencyStatus.IN_PROGRESS,
                lockedUntil=now + lock_seconds,
                expiresAt=now + ttl_seconds,
            )
        )
        held = await self._put_unless(item, "attribute_not_exists(#scope)", {"#scope": "scope"}, {})
        if held is None:
            return Claim(True, None, now + ttl_seconds)
        if held and not _takeable(from_item(held), now):
            return Claim(False, _record(held), None)
        held = await self._put_unless(
            item,
            "attribute_not_exists(#scope) OR expiresAt < :now OR (#status = :in_progress AND lockedUntil < :now)",
            {"#scope": "scope", "#status": "status"},
            {":now": serialize(now), ":in_progress": serialize(IdempotencyStatus.IN_PROGRESS.value)},
        )
        if held is None:
            return Claim(True, None, now + ttl_seconds)
        return Claim(False, _record(held) if held else await self.get(scope), None)

    async def _put_unless(
        self, item: dict[str, Any], condition: str, names: dict[str, str], values: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Put `item` if `condition` holds: None if written, else the item that stood in the way ({} if the
        store does not return it on a failed condition)."""
        try:
            await self.dynamodb.put_item(
                TableName=self.table,
                Item=item,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                **({"ExpressionAttributeValues": values} if values else {}),
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            return exc.response.get("Item") or {}
        return None

    async def get(self, scope: str) -> IdempotencyRecord | None:
        """The live record of `scope`, if any."""
        response = await self.dynamodb.get_item(
            TableName=self.table, Key={"scope": serialize(scope)}, ConsistentRead=True
        )
        return _record(response["Item"]) if "Item" in response else None

    async def complete(self, scope: str, claim: Claim, fingerprint: str, response: StoredResponse) -> None:
        """Store the first request's response, as one put of the whole record (cheaper than an update) on
        the condition that the record is still this request's (its fingerprint)."""
        assert claim.expires_at is not None, "only an owned claim stores a response"
        await self.dynamodb.put_item(
            TableName=self.table,
            Item=record_item(
                IdempotencyRecord(
                    scope=scope,
                    fingerprint=fingerprint,
                    status=IdempotencyStatus.COMPLETED,
                    expiresAt=claim.expires_at,
                    response=response,
                )
            ),
            ConditionExpression="fingerprint = :fingerprint",
            ExpressionAttributeValues={":fingerprint": serialize(fingerprint)},
        )

    async def release(self, scope: str) -> None:
        """Forget a claim whose request failed on our side, so a retry with the same key runs again."""
        await self.dynamodb.delete_item(TableName=self.table, Key={"scope": serialize(scope)})
