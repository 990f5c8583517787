"""Records whose status follows a state machine: created in the initial state, then moved only by
conditional, versioned writes (so duplicate or reordered events cannot move them backwards)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from events.envelope import utcnow
from events.persistence import Advance, AdvanceOutcome, RecordExists, StaleWrite
from events.states import StateMachine
from infra.repositories.dynamo import from_item, is_condition_failure, serialize, to_item

__all__ = ["Advance", "AdvanceOutcome", "RecordExists", "StaleWrite", "VersionedRepository"]


class VersionedRepository:
    """Items with a `status` moved by a state machine and a `version` bumped on every write."""

    key_name = "id"

    def __init__(self, dynamodb: Any, table: str, machine: StateMachine) -> None:
        self.dynamodb = dynamodb
        self.table = table
        self.machine = machine

    def _key(self, record_id: str) -> dict[str, Any]:
        return to_item({self.key_name: record_id})

    async def create(self, record: dict[str, Any], status: StrEnum | None = None) -> dict[str, Any]:
        """Insert a new record in the machine's initial state; raises RecordExists if the id is taken."""
        now = utcnow().isoformat()
        full = {
            **record,
            "status": (status or self.machine.initial).value,
            "version": 1,
            "createdAt": now,
            "updatedAt": now,
        }
        try:
            await self.dynamodb.put_item(
                TableName=self.table,
                Item=to_item(full),
                ConditionExpression=f"attribute_not_exists({self.key_name})",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise RecordExists(record[self.key_name]) from exc
            raise
        return full

    async def get(self, record_id: str) -> dict[str, Any] | None:
        """A record by id, strongly consistent, whoever owns it (for internal callers only)."""
        response = await self.dynamodb.get_item(TableName=self.table, Key=self._key(record_id), ConsistentRead=True)
        item = response.get("Item")
        return from_item(item) if item else None

    async def get_for_tenant(self, tenant_id: str, record_id: str) -> dict[str, Any] | None:
        """A record only if it belongs to `tenant_id`: another tenant's is indistinguishable from none."""
        record = await self.get(record_id)
        if record is None or record.get("tenantId") != tenant_id:
            return None
        return record

    async def _update(
        self,
        record_id: str,
        sets: dict[str, Any],
        condition: str,
        values: dict[str, Any],
        extra: str = "",
        remove: list[str] | tuple[str, ...] = (),
    ) -> dict[str, Any]:
        names = {f"#f{i}": name for i, name in enumerate(sets)}
        names.update({f"#r{i}": name for i, name in enumerate(remove)})
        remove_clause = f" REMOVE {', '.join(f'#r{i}' for i in range(len(remove)))}" if remove else ""
        expr_values = {f":f{i}": serialize(value) for i, value in enumerate(sets.values())}
        expr_values.update({k: serialize(v) for k, v in values.items()})
        set_clause = ", ".join(f"#f{i} = :f{i}" for i in range(len(sets)))
        # DynamoDB refuses names the expressions do not use.
        status_name = {"#status": "status"} if "#status" in condition + extra else {}
        try:
            response = await self.dynamodb.update_item(
                TableName=self.table,
                Key=self._key(record_id),
                UpdateExpression=f"SET {set_clause}, #version = #version + :one{extra}{remove_clause}",
                ConditionExpression=condition,
                ExpressionAttributeNames={**names, "#version": "version", **status_name},
                ExpressionAttributeValues={**expr_values, ":one": serialize(1)},
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise StaleWrite(record_id) from exc
            raise
        return from_item(response["Attributes"])

    async def update_fields(
        self,
        record_id: str,
        fields: dict[str, Any],
        *,
        expected_version: int | None = None,
        remove: list[str] | tuple[str, ...] = (),
        condition: str | None = None,
        values: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Set (and remove) fields without a status change; conditional on the version when one is given,
        and on `condition` (with its `values`) when one is given. Raises StaleWrite when a condition fails."""
        full_condition = f"attribute_exists({self.key_name})"
        all_values: dict[str, Any] = dict(values or {})
        if expected_version is not None:
            full_condition += " AND #version = :expected"
            all_values[":expected"] = expected_version
        if condition:
            full_condition += f" AND ({condition})"
        return await self._update(
            record_id, {**fields, "updatedAt": utcnow().isoformat()}, full_condition, all_values, remove=remove
        )

    async def transition(
        self, record_id: str, target: StrEnum, *, expected_version: int, fields: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Move a record to `target` if it is still at `expected_version` in an allowed predecessor state."""
        predecessors = sorted(s.value for s in self.machine.allowed_predecessors(target))
        placeholders = {f":p{i}": p for i, p in enumerate(predecessors)}
        condition = f"#version = :expected AND #status IN ({', '.join(placeholders)})"
        sets = {**(fields or {}), "status": target.value, "updatedAt": utcnow().isoformat()}
        sets = {k: v for k, v in sets.items() if v is not None}
        return await self._update(
            record_id,
            sets,
            condition,
            {":expected": expected_version, **placeholders},
            remove=self.fields_to_remove(target),
        )

    def fields_to_remove(self, target: StrEnum) -> tuple[str, ...]:
        """Attributes a move to `target` removes (none by default)."""
        return ()

    async def advance(
        self, record_id: str, target: StrEnum, fields: dict[str, Any] | None = None, attempts: int = 5
    ) -> Advance:
        """Read-check-write until the move is applied, found duplicate, or refused by the state machine."""
        for _ in range(attempts):
            record = await self.get(record_id)
            if record is None:
                return Advance(AdvanceOutcome.MISSING, None)
            current = type(target)(record["status"])
            if current == target and self.machine.is_terminal(current):
                return Advance(AdvanceOutcome.ALREADY, record)
            if not self.machine.can_transition(current, target):
                return Advance(AdvanceOutcome.REJECTED, record)
            try:
                updated = await self.transition(record_id, target, expected_version=record["version"], fields=fields)
            except StaleWrite:
                continue  # Someone else moved it first: read again and decide again.
            return Advance(AdvanceOutcome.APPLIED, updated)
        raise StaleWrite(record_id)
