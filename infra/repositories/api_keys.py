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

from botocore.exceptions import ClientError

from events.envelope import utcnow
from events.records.api_keys import ApiKeyRecord
from events.states import ApiKeyStatus
from infra.repositories.dynamo import from_item, is_condition_failure, record_item, serialize, to_item

KEY_PREFIX = "lf_"
# The longest grace a rotated-out key may keep (a week): rotation is for replacing a key, not for keeping two.
MAX_ROTATION_GRACE_SECONDS = 7 * 24 * 3600
# Longer than any key we issue; a longer token is refused before it is hashed or looked up.
MAX_KEY_LENGTH = 256
_CACHE_MAX_ENTRIES = 10_000


def generate_api_key() -> str:
    """A new random API key (256 bits of entropy)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_id_of(key_hash: str) -> str:
    """A key's public id: `key_` and the start of its hash (safe to show, print and log)."""
    return f"key_{key_hash[:12]}"


def is_usable(record: ApiKeyRecord, now: float) -> bool:
    """Whether a stored key may authenticate at `now` (epoch seconds): active, and not past a rotation's grace."""
    if record.status is not ApiKeyStatus.ACTIVE:
        return False
    return record.expiresAt is None or now < record.expiresAt


def rotation_expiry(now: float, grace_seconds: int) -> float:
    """When a rotated-out key stops working: `grace_seconds` from now (0: at once)."""
    if not 0 <= grace_seconds <= MAX_ROTATION_GRACE_SECONDS:
        raise ValueError(f"the grace period must be 0 to {MAX_ROTATION_GRACE_SECONDS} seconds")
    return now + grace_seconds


class KeyNotRotatable(Exception):
    """The key is revoked, expired or already rotated: there is nothing to rotate (the message says which)."""


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
        key_id = key_id_of(key_hash)
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

    async def revoke(self, raw_key: str) -> bool:
        """Mark a key revoked (False if there is no such key). Other processes' caches refuse it within their TTL;
        this one's at once."""
        return await self.revoke_hash(hash_api_key(raw_key))

    async def revoke_hash(self, key_hash: str) -> bool:
        """Mark the key with this stored hash revoked; False if there is no such key (never stored, or deleted
        meanwhile: a failed rotation takes its new key back)."""
        try:
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
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        finally:
            if self.cache is not None:
                self.cache.forget(key_hash)
        return True

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

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        """The record of the key with this public id (whatever its status), or None."""
        key_hash = await self.hash_for_id(key_id)
        return await self.get_by_hash(key_hash) if key_hash else None

    async def get_by_hash(self, key_hash: str) -> ApiKeyRecord | None:
        """The stored record of a key by its hash (whatever its status), or None."""
        response = await self.dynamodb.get_item(
            TableName=self.table, Key=to_item({"keyHash": key_hash}), ConsistentRead=True
        )
        item = response.get("Item")
        return ApiKeyRecord.model_validate(from_item(item)) if item else None

    async def list(self, tenant_id: str | None = None) -> list[ApiKeyRecord]:
        """Every key, or one tenant's, oldest first. A scan with a filter: the table is keyed by the key's hash
        (the per-request read), an operator lists rarely, and an index by tenant would be paid on every write."""
        kwargs: dict[str, Any] = {"TableName": self.table}
        if tenant_id is not None:
            kwargs["FilterExpression"] = "tenantId = :tenant"
            kwargs["ExpressionAttributeValues"] = {":tenant": serialize(tenant_id)}
        records: list[ApiKeyRecord] = []
        async for page in self.dynamodb.get_paginator("scan").paginate(**kwargs):
            records.extend(ApiKeyRecord.model_validate(from_item(item)) for item in page.get("Items", []))
        return sorted(records, key=lambda r: (r.createdAt, r.keyId))

    async def rotate(
        self, old: ApiKeyRecord, new_raw_key: str, new_signing_secret: str, *, grace_seconds: int
    ) -> tuple[ApiKeyRecord, ApiKeyRecord]:
        """Replace `old` by a new key of the same tenant, name and delete policy; `old` keeps working for
        `grace_seconds` (0: revoked now). Returns (the old key as updated, the new key). KeyNotRotatable when
        `old` is revoked, expired or already rotated (also when that changed since it was read)."""
        now = time.time()
        if not is_usable(old, now) or old.rotatedTo:
            raise KeyNotRotatable(f"key {old.keyId} is {_why_not_rotatable(old, now)}: issue a new key instead")
        expires_at = rotation_expiry(now, grace_seconds)
        new_id = await self.put(
            new_raw_key,
            tenant_id=old.tenantId,
            name=old.name,
            signing_secret=new_signing_secret,
            require_signed_deletes=old.requireSignedDeletes,
        )
        sets = "SET expiresAt = :expires, rotatedTo = :new"
        values = {
            ":expires": serialize(expires_at),
            ":new": serialize(new_id),
            ":active": serialize(ApiKeyStatus.ACTIVE.value),
        }
        if grace_seconds == 0:
            sets += ", #status = :revoked, revokedAt = :now"
            values[":revoked"] = serialize(ApiKeyStatus.REVOKED.value)
            values[":now"] = serialize(utcnow().isoformat())
        try:
            response = await self.dynamodb.update_item(
                TableName=self.table,
                Key=to_item({"keyHash": old.keyHash}),
                UpdateExpression=sets,
                # Two operators rotating the same key at once: one wins, the other's new key is withdrawn.
                ConditionExpression="attribute_exists(keyHash) AND #status = :active "
                "AND attribute_not_exists(rotatedTo)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            await self.dynamodb.delete_item(TableName=self.table, Key=to_item({"keyHash": hash_api_key(new_raw_key)}))
            if is_condition_failure(exc):
                raise KeyNotRotatable(f"key {old.keyId} changed while it was rotated: read it again") from exc
            raise
        if self.cache is not None:
            self.cache.forget(old.keyHash)
        new = await self.get_by_hash(hash_api_key(new_raw_key))
        assert new is not None  # written above, read consistently
        return ApiKeyRecord.model_validate(from_item(response["Attributes"])), new

    async def lookup(self, raw_key: str) -> ApiKeyRecord | None:
        """The record of a usable key, or None for an unknown, revoked or expired key (cached for a few seconds;
        a cached key's expiry is checked on every hit, so a rotated-out key stops at its `expiresAt`)."""
        key_hash = hash_api_key(raw_key)
        if self.cache is not None and (cached := self.cache.get(key_hash)) is not None:
            if is_usable(cached, time.time()):
                return cached
            self.cache.forget(key_hash)
            return None
        response = await self.dynamodb.get_item(
            TableName=self.table, Key=to_item({"keyHash": key_hash}), ConsistentRead=True
        )
        item = response.get("Item")
        if not item:
            return None
        record = ApiKeyRecord.model_validate(from_item(item))
        if not is_usable(record, time.time()):
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


def _why_not_rotatable(record: ApiKeyRecord, now: float) -> str:
    if record.status is not ApiKeyStatus.ACTIVE:
        return "revoked"
    if record.rotatedTo:
        return f"already rotated to {record.rotatedTo}"
    return "expired"
