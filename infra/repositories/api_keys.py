"""API keys, stored hashed: the raw key is shown once and never written anywhere."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from events.envelope import utcnow
from infra.repositories.dynamo import from_item, to_item

KEY_PREFIX = "lf_"


def generate_api_key() -> str:
    """A new random API key (256 bits of entropy)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(raw_key: str) -> str:
    """The stored form of a key. Keys are random, so a fast hash is enough: there is nothing to guess."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


class ApiKeyRepository:
    """Maps hashed API keys to tenants."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self.dynamodb = dynamodb
        self.table = table

    async def put(self, raw_key: str, *, tenant_id: str, name: str, signing_secret: str | None = None) -> str:
        """Store a key for a tenant (overwriting the same key is harmless); returns its public id.

        The signing secret must be readable to verify HMAC signatures, so it is stored as given (the
        table is encrypted at rest); without one, the key cannot make signed (destructive) calls.
        """
        key_hash = hash_api_key(raw_key)
        key_id = f"key_{key_hash[:12]}"
        await self.dynamodb.put_item(
            TableName=self.table,
            Item=to_item(
                {
                    "keyHash": key_hash,
                    "keyId": key_id,
                    "tenantId": tenant_id,
                    "name": name,
                    "status": "active",
                    "signingSecret": signing_secret,
                    "createdAt": utcnow().isoformat(),
                }
            ),
        )
        return key_id

    async def lookup(self, raw_key: str) -> dict[str, Any] | None:
        """The record of an active key, or None for an unknown or revoked key."""
        response = await self.dynamodb.get_item(
            TableName=self.table, Key=to_item({"keyHash": hash_api_key(raw_key)}), ConsistentRead=True
        )
        item = response.get("Item")
        if not item:
            return None
        record = from_item(item)
        return record if record.get("status") == "active" else None

    async def tenant_for(self, raw_key: str) -> str | None:
        """The tenant an active key belongs to, or None for an unknown or revoked key."""
        record = await self.lookup(raw_key)
        return record["tenantId"] if record else None
