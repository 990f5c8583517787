"""Training images of a model: one item per image, keyed (modelId, dataId); the bytes live in S3."""

from __future__ import annotations

from typing import Any

from events.envelope import utcnow
from infra.repositories.dynamo import from_item, query_all, serialize, to_item


class TrainingDataRepository:
    """Reads and writes of training-data items."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self.dynamodb = dynamodb
        self.table = table

    async def put(self, item: dict[str, Any]) -> dict[str, Any]:
        """Create or replace one item; a replacement keeps its original createdAt."""
        existing = await self.get(item["modelId"], item["dataId"])
        now = utcnow().isoformat()
        record = {**item, "createdAt": existing["createdAt"] if existing else now, "updatedAt": now}
        await self.dynamodb.put_item(TableName=self.table, Item=to_item(record))
        return record

    async def get(self, model_id: str, data_id: str) -> dict[str, Any] | None:
        """One item, or None."""
        response = await self.dynamodb.get_item(
            TableName=self.table, Key=to_item({"modelId": model_id, "dataId": data_id}), ConsistentRead=True
        )
        item = response.get("Item")
        return from_item(item) if item else None

    async def list(self, model_id: str) -> list[dict[str, Any]]:
        """Every item of a model, oldest first."""
        items = await query_all(
            self.dynamodb,
            TableName=self.table,
            KeyConditionExpression="modelId = :m",
            ExpressionAttributeValues={":m": serialize(model_id)},
            ConsistentRead=True,
        )
        return sorted(items, key=lambda i: (i["createdAt"], i["dataId"]))

    async def delete(self, model_id: str, data_id: str) -> None:
        """Remove one item (the caller removes its bytes)."""
        await self.dynamodb.delete_item(TableName=self.table, Key=to_item({"modelId": model_id, "dataId": data_id}))
