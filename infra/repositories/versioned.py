"""Records whose status follows a state machine: created in their initial state, then moved only by
conditional, versioned writes (so duplicate or reordered events cannot move them backwards)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Generic, TypeVar

from botocore.exceptions import ClientError

from events.envelope import utcnow
from events.persistence import Advance, AdvanceOutcome, RecordExists, StaleWrite
from events.records.base import StoredRecord
from events.states import StateMachine
from infra.repositories.dynamo import declared_fields, from_item, is_condition_failure, record_item, serialize, to_item

__all__ = ["Advance", "AdvanceOutcome", "RecordExists", "StaleWrite", "VersionedRepository"]

RecordT = TypeVar("RecordT", bound=StoredRecord)


class VersionedRepository(Generic[RecordT]):
    """Typed records with a `status` moved by a state machine and a `version` bumped on every write.

    Subclasses say which record class(es) the table holds (`record_classes`, `parse`) and which state
    machine governs a target status (`machine_for`).
    """

    key_name = "id"

    def __init__(self, dynamodb: Any, table: str, machine: StateMachine) -> None:
        self.dynamodb = dynamodb
        self.table = table
        self.machine = machine

    # -- what the table holds -------------------------------------------------------------------------------
    def parse(self, item: dict[str, Any]) -> RecordT:
        """A stored item (plain values) as its record."""
        raise NotImplementedError

    def record_classes(self, target: StrEnum | None = None) -> tuple[type[StoredRecord], ...]:
        """The record classes whose fields a partial update may set (for a move to `target`, if given)."""
        raise NotImplementedError

    def machine_for(self, target: StrEnum) -> StateMachine:
        """The state machine that governs a move to `target`."""
        return self.machine

    # -- reads and writes -----------------------------------------------------------------------------------
    def _key(self, record_id: str) -> dict[str, Any]:
        return to_item({self.key_name: record_id})

    def _stored(self, fields: Mapping[str, Any], target: StrEnum | None = None) -> dict[str, Any]:
        """Partial-update fields validated against the record class: an undeclared name raises ValueError."""
        return declared_fields(self.record_classes(target), fields)

    async def create(self, record: RecordT) -> RecordT:
        """Insert a new record at version 1, created and updated now, in the status it carries (its class's
        default is the machine's initial state); raises RecordExists if the id is taken."""
        now = utcnow().isoformat()
        full = record.model_copy(update={"version": 1, "createdAt": now, "updatedAt": now})
        try:
            await self.dynamodb.put_item(
                TableName=self.table,
                Item=record_item(full),
                ConditionExpression=f"attribute_not_exists({self.key_name})",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise RecordExists(getattr(record, self.key_name)) from exc
            raise
        return full

    async def get(self, record_id: str) -> RecordT | None:
        """A record by id, strongly consistent, whoever owns it (for internal callers only)."""
        response = await self.dynamodb.get_item(TableName=self.table, Key=self._key(record_id), ConsistentRead=True)
        item = response.get("Item")
        return self.parse(from_item(item)) if item else None

    async def get_for_tenant(self, tenant_id: str, record_id: str) -> RecordT | None:
        """A record only if it belongs to `tenant_id`: another tenant's is indistinguishable from none."""
        record = await self.get(record_id)
        if record is None or getattr(record, "tenantId", None) != tenant_id:
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
        names: dict[str, str] | None = None,
    ) -> RecordT:
        """One conditional UpdateItem; `sets` are stored values already checked against the record class,
        `names` any placeholders the condition uses besides `#status` and `#version`."""
        names = {**(names or {}), **{f"#f{i}": name for i, name in enumerate(sets)}}
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
        return self.parse(from_item(response["Attributes"]))

    async def update_fields(
        self,
        record_id: str,
        fields: Mapping[str, Any],
        *,
        expected_version: int | None = None,
        remove: list[str] | tuple[str, ...] = (),
        condition: str | None = None,
        values: dict[str, Any] | None = None,
    ) -> RecordT:
        """Set (and remove) fields without a status change; conditional on the version when one is given,
        and on `condition` (with its `values`) when one is given. Raises StaleWrite when a condition fails,
        ValueError for a field (set or removed) the record does not declare."""
        sets = self._stored({**fields, "updatedAt": utcnow().isoformat()})
        self._stored(dict.fromkeys(remove))
        full_condition = f"attribute_exists({self.key_name})"
        all_values: dict[str, Any] = dict(values or {})
        if expected_version is not None:
            full_condition += " AND #version = :expected"
            all_values[":expected"] = expected_version
        if condition:
            full_condition += f" AND ({condition})"
        return await self._update(record_id, sets, full_condition, all_values, remove=remove)

    async def transition(
        self,
        record_id: str,
        target: StrEnum,
        *,
        expected_version: int,
        fields: Mapping[str, Any] | None = None,
    ) -> RecordT:
        """Move a record to `target` if it is still at `expected_version` in an allowed predecessor state."""
        machine = self.machine_for(target)
        predecessors = sorted(s.value for s in machine.allowed_predecessors(target))
        placeholders = {f":p{i}": p for i, p in enumerate(predecessors)}
        condition = f"#version = :expected AND #status IN ({', '.join(placeholders)})"
        given = {k: v for k, v in (fields or {}).items() if v is not None}
        sets = self._stored({**given, "status": target.value, "updatedAt": utcnow().isoformat()}, target)
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
        self,
        record_id: str,
        target: StrEnum,
        fields: Mapping[str, Any] | None = None,
        attempts: int = 5,
        *,
        only_from: StrEnum | None = None,
    ) -> Advance[RecordT]:
        """Read-check-write until the move is applied, found duplicate, or refused by the state machine.

        `fields` (stored names, values or models) are checked against the record before anything is read.
        `only_from`: refuse (REJECTED) unless the record is in that status when written, for a move the state
        machine allows from several (a cancel meant for a queued job must not end a running one)."""
        machine = self.machine_for(target)
        self._stored({k: v for k, v in (fields or {}).items() if v is not None}, target)
        for _ in range(attempts):
            record = await self.get(record_id)
            if record is None:
                return Advance(AdvanceOutcome.MISSING, None)
            current = getattr(record, "status")  # noqa: B009 - every versioned record has one
            if not isinstance(current, type(target)):
                return Advance(AdvanceOutcome.REJECTED, record)  # a record of another kind than the target's
            if current == target and machine.is_terminal(current):
                return Advance(AdvanceOutcome.ALREADY, record)
            if only_from is not None and current != only_from:
                return Advance(AdvanceOutcome.REJECTED, record)
            if not machine.can_transition(current, target):
                return Advance(AdvanceOutcome.REJECTED, record)
            try:
                updated = await self.transition(
                    record_id,
                    target,
                    expected_version=record.version,
                    fields=fields,
                )
            except StaleWrite:
                continue  # Someone else moved it first: read again and decide again.
            return Advance(AdvanceOutcome.APPLIED, updated)
        raise StaleWrite(record_id)
