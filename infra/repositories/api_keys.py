"""API keys, stored hashed: the raw key is shown once and never written anywhere.

Also the one parser of `Authorization` headers (Bearer and Basic), used by every caller that needs to know
who is asking, and a short-lived per-process cache of lookups (a key is read on every request).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from events.envelope import utcnow
from events.records.api_keys import ApiKeyRecord
from events.states import ApiKeyStatus
from infra.repositories.dynamo import from_item, record_item, serialize, to_item

KEY_PREFIX = "lf_"
# Longer than any key we issue; a longer token is refused before it is hashed or looked up.
MAX_KEY_LENGTH = 256
_CACHE_MAX_ENTRIES = 10_000


def generate_api_key() -> str:
    """A new random API key (256 bits of entropy)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(raw_key: str) -> str:
    """The stored form of a key. Keys are random, so a fast hash is enough: there is nothing to guess."""
    return hashlib.sha256(raw_key.encode()).hexdigest()


@dataclass(frozen=True)
class Credentials:
    """What an `Authorization` header presents: an API key and, with Basic, the key's signing secret."""

    api_key: str
    secret: str | None = None  # only Basic carries it; a request that sends it has proven it (once checked)


class InvalidCredentials(ValueError):
    """The `Authorization` header is missing or not a form we accept; the message says which forms are."""


def parse_authorization(header: str | None) -> Credentials:
    """`Bearer <api key>` or `Basic base64(<api key>:<signing secret>)` (the Scenario-style API's `curl -u KEY:SECRET`).

    Raises InvalidCredentials for anything else: no header, another scheme, an empty or oversized key, a
    Basic value that is not base64 of `key:secret` with both parts present.
    """
    if not header:
        raise InvalidCredentials(
            "missing 'Authorization: Bearer <api key>' (or 'Basic base64(<api key>:<signing secret>)') header"
        )
    scheme, _, value = header.partition(" ")
    scheme, value = scheme.lower(), value.strip()
    if scheme == "bearer" and value:
        credentials = Credentials(value)
    elif scheme == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidCredentials("the Basic credentials must be base64 of '<api key>:<signing secret>'") from exc
        key, colon, secret = decoded.partition(":")
        if not key or not colon or not secret:
            raise InvalidCredentials("the Basic credentials must be '<api key>:<signing secret>', both non-empty")
        credentials = Credentials(key, secret)
    else:
        raise InvalidCredentials(
            "the Authorization header must be 'Bearer <api key>' or 'Basic base64(<api key>:<signing secret>)'"
        )
    if len(credentials.api_key) > MAX_KEY_LENGTH:
        raise InvalidCredentials("invalid API key")
    return credentials


class ApiKeyCache:
    """Active key records by key hash, each trusted for `ttl_seconds` after it was read.

    The bound on staleness is the point: a key revoked elsewhere (another process, an operator's tool)
    stops working here within `ttl_seconds`. Only found, active keys are kept, so a key created a moment
    ago works at once. `clock` is injectable so tests need not wait.
    """

    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self._entries: dict[str, tuple[float, ApiKeyRecord]] = {}

    def get(self, key_hash: str) -> ApiKeyRecord | None:
        """The cached record, if it was read less than `ttl_seconds` ago."""
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        if self.clock() >= entry[0]:
            self._entries.pop(key_hash, None)
            return None
        return entry[1]

    def put(self, key_hash: str, record: ApiKeyRecord) -> None:
        """Remember an active key's record (no-op when caching is off)."""
        if self.ttl_seconds <= 0:
            return
        if len(self._entries) >= _CACHE_MAX_ENTRIES:
            now = self.clock()
            self._entries = {k: v for k, v in self._entries.items() if v[0] > now}
            if len(self._entries) >= _CACHE_MAX_ENTRIES:
                self._entries.pop(next(iter(self._entries)))  # the oldest insertion
        self._entries[key_hash] = (self.clock() + self.ttl_seconds, record)

    def forget(self, key_hash: str) -> None:
        """Drop one key (this process revoked it: no need to wait for the TTL here)."""
        self._entries.pop(key_hash, None)


class ApiKeyRepository:
    """Maps hashed API keys to tenants."""

    def __init__(self, dynamodb: Any, table: str, cache: ApiKeyCache | None = None) -> None:
        self.dynamodb = dynamodb
        self.table = table
        self.cache = cache

    async def put(
        self,
        raw_key: str,
        *,
        tenant_id: str,
        name: str,
        signing_secret: str | None = None,
        require_signed_deletes: bool = True,
    ) -> str:
        """Store a key for a tenant (overwriting the same key is harmless); returns its public id.

        The signing secret must be readable to verify HMAC signatures, so it is stored as given (the
        table is encrypted at rest); without one, the key cannot make signed calls. `require_signed_deletes`
        is the key's delete policy (docs/api-compat.md, "Deleting a model"): True, as before this policy
        existed, means `DELETE /v1/models/{id}` must prove the secret; False lets the key alone delete
        (the custom-models API's clients).
        """
        key_hash = hash_api_key(raw_key)
        key_id = f"key_{key_hash[:12]}"
        record = ApiKeyRecord(
            keyHash=key_hash,
            keyId=key_id,
            tenantId=tenant_id,
            name=name,
            status=ApiKeyStatus.ACTIVE,
            signingSecret=signing_secret,
            requireSignedDeletes=require_signed_deletes,
            createdAt=utcnow().isoformat(),
        )
        await self.dynamodb.put_item(TableName=self.table, Item=record_item(record))
        if self.cache is not None:
            self.cache.forget(key_hash)
        return key_id

    async def revoke(self, raw_key: str) -> None:
        """Mark a key revoked. Other processes' caches refuse it within their TTL; this one's at once."""
        await self.revoke_hash(hash_api_key(raw_key))

    async def revoke_hash(self, key_hash: str) -> None:
        """Mark the key with this stored hash revoked."""
        await self.dynamodb.update_item(
            TableName=self.table,
            Key=to_item({"keyHash": key_hash}),
            UpdateExpression="SET #status = :revoked, revokedAt = :now",
            ConditionExpression="attribute_exists(keyHash)",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":revoked": serialize(ApiKeyStatus.REVOKED.value),
                ":now": serialize(utcnow().isoformat()),
            },
        )
        if self.cache is not None:
            self.cache.forget(key_hash)

    async def hash_for_id(self, key_id: str) -> str | None:
        """The stored hash of the key with this public id, or None. A scan: an operator's rare lookup over a
        table of one item per key, which saves an index that every request's write would also pay for."""
        paginator = self.dynamodb.get_paginator("scan")
        async for page in paginator.paginate(
            TableName=self.table,
            FilterExpression="keyId = :id",
            ExpressionAttributeValues={":id": serialize(key_id)},
            ProjectionExpression="keyHash",
        ):
            for item in page.get("Items", []):
                return str(from_item(item)["keyHash"])
        return None

    async def lookup(self, raw_key: str) -> ApiKeyRecord | None:
        """The record of an active key, or None for an unknown or revoked key (cached for a few seconds)."""
        key_hash = hash_api_key(raw_key)
        if self.cache is not None and (cached := self.cache.get(key_hash)) is not None:
            return cached
        response = await self.dynamodb.get_item(
            TableName=self.table, Key=to_item({"keyHash": key_hash}), ConsistentRead=True
        )
        item = response.get("Item")
        if not item:
            return None
        record = ApiKeyRecord.model_validate(from_item(item))
        if record.status is not ApiKeyStatus.ACTIVE:
            return None
        if self.cache is not None:
            self.cache.put(key_hash, record)
        return record

    async def authenticate(self, credentials: Credentials) -> ApiKeyRecord | None:
        """The active key's record if the credentials hold: the key exists and, when a secret is presented
        (Basic), it is that key's signing secret, compared in constant time. None otherwise."""
        record = await self.lookup(credentials.api_key)
        if record is None:
            return None
        if credentials.secret is not None:
            stored = record.signingSecret
            if not stored or not hmac.compare_digest(credentials.secret.encode(), stored.encode()):
                return None
        return record

    async def tenant_for(self, raw_key: str) -> str | None:
        """The tenant an active key belongs to, or None for an unknown or revoked key."""
        record = await self.lookup(raw_key)
        return record.tenantId if record else None
