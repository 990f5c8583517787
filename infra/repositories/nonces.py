"""One-time tokens: a conditional put succeeds only the first time, and TTL forgets them later."""

from __future__ import annotations

import time
from typing import Any

from botocore.exceptions import ClientError

from events.records.nonces import NonceRecord
from infra.repositories.dynamo import is_condition_failure, record_item


class NonceRepository:
    """Remembers tokens (such as request signatures) long enough to refuse their reuse."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self.dynamodb = dynamodb
        self.table = table

    async def use_once(self, nonce: str, ttl_seconds: int) -> bool:
        """Record `nonce`; False if it was recorded before (a replay)."""
        record = NonceRecord(nonce=nonce, expiresAt=int(time.time()) + ttl_seconds)
        try:
            await self.dynamodb.put_item(
                TableName=self.table, Item=record_item(record), ConditionExpression="attribute_not_exists(nonce)"
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True
