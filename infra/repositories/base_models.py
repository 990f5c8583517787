"""The base-models table: base models an operator registered at run time, without a redeploy.

Every request that names a base model needs the registry, so each process trusts one read of the whole table (it
holds a handful of rows) for a few seconds, as it trusts a read of an API key. The API reads through
`BaseModelRepository`; the workers, whose model threads are not async, through `RegisteredBaseModelReader`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import botocore.session
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from events.envelope import utcnow
from events.records.base_models import RegisteredBaseModelRecord
from infra.aws import client_kwargs
from infra.base_models import BaseModelSpec, base_model_registry
from infra.repositories.dynamo import from_item, is_condition_failure, record_item, to_item
from infra.settings import BaseModelSource, Settings

log = logging.getLogger(__name__)


def as_source(record: RegisteredBaseModelRecord) -> BaseModelSource:
    """A row as the settings' kind of entry (what `infra.base_models.configured_spec` reads)."""
    return BaseModelSource(source=record.source, family=record.family, config=record.config, sha256=record.sha256)


class RegisteredBaseModelCache:
    """The last read of the whole table, trusted for `ttl_seconds` (0: never cached). `clock` is injectable."""

    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self._entry: tuple[float, list[RegisteredBaseModelRecord]] | None = None
        self._lock = threading.Lock()

    def get(self) -> list[RegisteredBaseModelRecord] | None:
        """The cached rows, or None when there is no fresh read."""
        with self._lock:
            if self._entry is None or self.clock() >= self._entry[0]:
                self._entry = None
                return None
            return self._entry[1]

    def put(self, rows: list[RegisteredBaseModelRecord]) -> None:
        """Remember a read."""
        if self.ttl_seconds > 0:
            with self._lock:
                self._entry = (self.clock() + self.ttl_seconds, rows)

    def forget(self) -> None:
        """Drop the read (this process changed the table)."""
        with self._lock:
            self._entry = None


def _rows(items: list[dict[str, Any]]) -> list[RegisteredBaseModelRecord]:
    """The readable rows, by name; a row that is not a valid entry (written by hand, say) is skipped and logged,
    so it cannot hide the others, nor fail every request that reads the registry."""
    rows = []
    for item in items:
        try:
            rows.append(RegisteredBaseModelRecord.model_validate(from_item(item)))
        except ValidationError:
            log.warning("base-models table: skipping an unreadable row %r", item.get("name"), exc_info=True)
    return sorted(rows, key=lambda r: r.name)


class BaseModelRepository:
    """Reads and writes of registered base models."""

    def __init__(self, dynamodb: Any, table: str, cache: RegisteredBaseModelCache | None = None) -> None:
        self.dynamodb = dynamodb
        self.table = table
        self.cache = cache

    async def put(self, record: RegisteredBaseModelRecord) -> RegisteredBaseModelRecord:
        """Register a base model, or replace its entry (keeping its original createdAt)."""
        existing = await self.get(record.name)
        now = utcnow().isoformat()
        record = record.model_copy(update={"createdAt": existing.createdAt if existing else now, "updatedAt": now})
        await self.dynamodb.put_item(TableName=self.table, Item=record_item(record))
        if self.cache is not None:
            self.cache.forget()
        return record

    async def get(self, name: str) -> RegisteredBaseModelRecord | None:
        """One registered base model, or None."""
        response = await self.dynamodb.get_item(TableName=self.table, Key=to_item({"name": name}), ConsistentRead=True)
        item = response.get("Item")
        return RegisteredBaseModelRecord.model_validate(from_item(item)) if item else None

    async def list(self, *, cached: bool = False) -> list[RegisteredBaseModelRecord]:
        """Every registered base model, by name; `cached`: through this process's cache (the per-request read)."""
        if cached and self.cache is not None and (rows := self.cache.get()) is not None:
            return rows
        items: list[dict[str, Any]] = []
        async for page in self.dynamodb.get_paginator("scan").paginate(TableName=self.table, ConsistentRead=True):
            items.extend(page.get("Items", []))
        rows = _rows(items)
        if self.cache is not None:
            self.cache.put(rows)
        return rows

    async def sources(self) -> dict[str, BaseModelSource]:
        """The registered base models as registry entries, by name (through the cache)."""
        return {row.name: as_source(row) for row in await self.list(cached=True)}

    async def delete(self, name: str) -> bool:
        """Unregister a base model; False if it was not registered."""
        try:
            await self.dynamodb.delete_item(
                TableName=self.table,
                Key=to_item({"name": name}),
                ConditionExpression="attribute_exists(#name)",
                ExpressionAttributeNames={"#name": "name"},
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        finally:
            if self.cache is not None:
                self.cache.forget()
        return True


class RegisteredBaseModelReader:
    """A worker's look-up of a registered base model by name, from its model thread (a blocking botocore client):
    one GetItem per name the deployment does not know, each answer trusted for the cache period (a worker's role
    may read single rows, never scan the table)."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self._client: Any = None
        self._rows: dict[str, tuple[float, RegisteredBaseModelRecord | None]] = {}
        self._lock = threading.Lock()

    def spec(self, name: str) -> BaseModelSpec | None:
        """The base model a job names: a built-in or configured one without reading the table, else a registered
        one (or None)."""
        spec = base_model_registry(self.settings).get(name)
        if spec is not None:
            return spec
        row = self._row(name)
        return None if row is None else base_model_registry(self.settings, {name: as_source(row)}).get(name)

    def _row(self, name: str) -> RegisteredBaseModelRecord | None:
        """The row of `name`, through the per-name cache; when the table cannot be read, the last answer stands
        (a worker goes on with what it knew; a first read's failure propagates)."""
        with self._lock:
            cached = self._rows.get(name)
        if cached is not None and self.clock() < cached[0]:
            return cached[1]
        try:
            row = self._get(name)
        except (BotoCoreError, ClientError):
            if cached is None:
                raise
            log.warning("cannot read base model %r from its table; using the last read", name, exc_info=True)
            row = cached[1]
        with self._lock:
            self._rows[name] = (self.clock() + self.settings.api_key_cache_seconds, row)
        return row

    def _get(self, name: str) -> RegisteredBaseModelRecord | None:
        if self._client is None:
            self._client = botocore.session.get_session().create_client(
                "dynamodb", **client_kwargs(self.settings, "dynamodb")
            )
        response = self._client.get_item(
            TableName=self.settings.base_models_table, Key=to_item({"name": name}), ConsistentRead=True
        )
        item = response.get("Item")
        return RegisteredBaseModelRecord.model_validate(from_item(item)) if item else None
