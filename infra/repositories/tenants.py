"""Tenants: created by an operator, read on every request (through a short-lived per-process cache, as keys are),
their stored bytes counted by conditional updates."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from events.envelope import utcnow
from events.records.tenants import TenantQuotas, TenantRecord
from events.states import TenantStatus
from infra.repositories.dynamo import from_item, is_condition_failure, record_item, serialize, to_item


class TenantExists(Exception):
    """A tenant with this id exists already."""


class TenantCache:
    """Tenant records by id, each trusted for `ttl_seconds` after it was read (absent tenants too: most keys'
    tenants have no record, and every request asks). `clock` is injectable so tests need not wait."""

    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self._entries: dict[str, tuple[float, TenantRecord | None]] = {}

    def get(self, tenant_id: str) -> tuple[bool, TenantRecord | None]:
        """(found in the cache, the record or None for a tenant known to have no record)."""
        entry = self._entries.get(tenant_id)
        if entry is None or self.clock() >= entry[0]:
            self._entries.pop(tenant_id, None)
            return False, None
        return True, entry[1]

    def put(self, tenant_id: str, record: TenantRecord | None) -> None:
        """Remember a read (no-op when caching is off)."""
        if self.ttl_seconds > 0:
            if len(self._entries) >= 10_000:
                self._entries.clear()
            self._entries[tenant_id] = (self.clock() + self.ttl_seconds, record)

    def forget(self, tenant_id: str) -> None:
        """Drop one tenant (this process changed it)."""
        self._entries.pop(tenant_id, None)


class TenantRepository:
    """The tenants table."""

    def __init__(self, dynamodb: Any, table: str, cache: TenantCache | None = None) -> None:
        self.dynamodb = dynamodb
        self.table = table
        self.cache = cache

    async def create(self, record: TenantRecord) -> TenantRecord:
        """Insert a new tenant; TenantExists if the id is taken."""
        try:
            await self.dynamodb.put_item(
                TableName=self.table, Item=record_item(record), ConditionExpression="attribute_not_exists(tenantId)"
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise TenantExists(record.tenantId) from exc
            raise
        if self.cache is not None:
            self.cache.forget(record.tenantId)
        return record

    async def get(self, tenant_id: str, *, cached: bool = False) -> TenantRecord | None:
        """The tenant's record, or None. `cached`: through this process's cache (the per-request read)."""
        if cached and self.cache is not None:
            hit, record = self.cache.get(tenant_id)
            if hit:
                return record
        response = await self.dynamodb.get_item(
            TableName=self.table, Key=to_item({"tenantId": tenant_id}), ConsistentRead=True
        )
        item = response.get("Item")
        record = TenantRecord.model_validate(from_item(item)) if item else None
        if cached and self.cache is not None:
            self.cache.put(tenant_id, record)
        return record

    async def list(self) -> list[TenantRecord]:
        """Every tenant, by id (an operator's call: a scan of one small item per tenant)."""
        paginator = self.dynamodb.get_paginator("scan")
        records: list[TenantRecord] = []
        async for page in paginator.paginate(TableName=self.table):
            records.extend(TenantRecord.model_validate(from_item(item)) for item in page.get("Items", []))
        return sorted(records, key=lambda r: r.tenantId)

    async def update(
        self,
        tenant_id: str,
        *,
        quotas: TenantQuotas | None = None,
        status: TenantStatus | None = None,
        display_name: str | None = None,
    ) -> TenantRecord | None:
        """Change a tenant's quotas (replaced whole), status or name; None if there is no such tenant."""
        sets = {"updatedAt": utcnow().isoformat()}
        if quotas is not None:
            sets["quotas"] = quotas.model_dump(mode="json", exclude_none=True)
        if status is not None:
            sets["status"] = status.value
        if display_name is not None:
            sets["displayName"] = display_name
        names = {f"#{k}": k for k in sets}
        try:
            response = await self.dynamodb.update_item(
                TableName=self.table,
                Key=to_item({"tenantId": tenant_id}),
                UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in sets),
                ConditionExpression="attribute_exists(tenantId)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={f":{k}": serialize(v) for k, v in sets.items()},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return None
            raise
        if self.cache is not None:
            self.cache.forget(tenant_id)
        return TenantRecord.model_validate(from_item(response["Attributes"]))

    async def add_storage(self, tenant_id: str, delta: int, *, limit: int | None = None) -> bool:
        """Add `delta` bytes (negative: freed) to the tenant's stored bytes; with `limit`, only while the total
        stays within it (False: refused, nothing added); freeing more than is counted is refused too (False). A
        tenant without a record gets one (defaults)."""
        now = utcnow().isoformat()
        condition = None
        values: dict[str, Any] = {":d": serialize(delta), ":zero": serialize(0), ":now": serialize(now)}
        if limit is not None and delta > 0:
            condition = "attribute_not_exists(storageBytes) OR storageBytes <= :room"
            values[":room"] = serialize(limit - delta)
            if limit - delta < 0:
                return False
        elif delta < 0:
            # Two concurrent deletes must not take the count below zero (a negative usage fails every later read).
            condition = "storageBytes >= :freed"
            values[":freed"] = serialize(-delta)
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Key": to_item({"tenantId": tenant_id}),
            "UpdateExpression": "SET storageBytes = if_not_exists(storageBytes, :zero) + :d, updatedAt = :now, "
            "createdAt = if_not_exists(createdAt, :now), #status = if_not_exists(#status, :active)",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {**values, ":active": serialize(TenantStatus.ACTIVE.value)},
        }
        if condition:
            kwargs["ConditionExpression"] = condition
        try:
            await self.dynamodb.update_item(**kwargs)
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True
