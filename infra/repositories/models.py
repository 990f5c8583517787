"""Models in DynamoDB: one record per model, scoped to its tenant, soft-deleted so history survives."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from events.envelope import utcnow
from events.records.base import StoredRecord
from events.records.models import ModelRecord
from events.states import MODEL
from infra.repositories.dynamo import query_all, serialize
from infra.repositories.versioned import StaleWrite, VersionedRepository
from infra.resources import MODELS_BY_TENANT_INDEX


class ModelRepository(VersionedRepository[ModelRecord]):
    """Reads and conditional writes of model records."""

    key_name = "modelId"

    def __init__(self, dynamodb: Any, table: str) -> None:
        super().__init__(dynamodb, table, MODEL)

    def parse(self, item: dict[str, Any]) -> ModelRecord:
        """A stored model item as its record."""
        return ModelRecord.model_validate(item)

    def record_classes(self, target: StrEnum | None = None) -> tuple[type[StoredRecord], ...]:
        """Models are one class."""
        return (ModelRecord,)

    async def get_live(self, tenant_id: str, model_id: str) -> ModelRecord | None:
        """A model of `tenant_id` that is not deleted; None otherwise (the caller answers 404)."""
        model = await self.get_for_tenant(tenant_id, model_id)
        if model is None or model.deletedAt:
            return None
        return model

    async def list_for_tenant(self, tenant_id: str) -> list[ModelRecord]:
        """Every live model of a tenant, newest first.

        Reads the tenant's whole partition of the index: fine for the hundreds of models a tenant has;
        `offset` paging over millions would want a cursor instead.
        """
        items = await query_all(
            self.dynamodb,
            TableName=self.table,
            IndexName=MODELS_BY_TENANT_INDEX,
            KeyConditionExpression="tenantId = :t",
            FilterExpression="attribute_not_exists(deletedAt)",
            ExpressionAttributeValues={":t": serialize(tenant_id)},
            ScanIndexForward=False,
        )
        return [self.parse(i) for i in items]

    async def soft_delete(self, model_id: str) -> bool:
        """Mark a model deleted (its record and history stay); False if it already was."""
        now = utcnow().isoformat()
        try:
            await self._update(
                model_id,
                self._stored({"deletedAt": now, "updatedAt": now}),
                "attribute_exists(modelId) AND attribute_not_exists(deletedAt)",
                {},
            )
        except StaleWrite:
            return False
        return True
