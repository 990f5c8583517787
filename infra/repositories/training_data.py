"""Training images of a model: one item per image, keyed (modelId, dataId); the bytes live in S3."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from events.envelope import utcnow
from events.records.training_data import TrainingImageRecord
from infra.repositories.dynamo import from_item, is_condition_failure, query_all, record_item, serialize, to_item


class TrainingDataRepository:
    """Reads and writes of training-image records."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self.dynamodb = dynamodb
        self.table = table

    async def put(self, item: TrainingImageRecord) -> TrainingImageRecord:
        """Create or replace one image's record; a replacement keeps its original createdAt."""
        existing = await self.get(item.modelId, item.dataId)
        now = utcnow().isoformat()
        record = item.model_copy(update={"createdAt": existing.createdAt if existing else now, "updatedAt": now})
        await self.dynamodb.put_item(TableName=self.table, Item=record_item(record))
        return record

    async def get(self, model_id: str, data_id: str) -> TrainingImageRecord | None:
        """One image's record, or None."""
        response = await self.dynamodb.get_item(
            TableName=self.table, Key=to_item({"modelId": model_id, "dataId": data_id}), ConsistentRead=True
        )
        item = response.get("Item")
        return TrainingImageRecord.model_validate(from_item(item)) if item else None

    async def list(self, model_id: str) -> list[TrainingImageRecord]:
        """Every image of a model, oldest first."""
        items = await query_all(
            self.dynamodb,
            TableName=self.table,
            KeyConditionExpression="modelId = :m",
            ExpressionAttributeValues={":m": serialize(model_id)},
            ConsistentRead=True,
        )
        records = [TrainingImageRecord.model_validate(i) for i in items]
        return sorted(records, key=lambda i: (i.createdAt, i.dataId))

    async def delete(self, model_id: str, data_id: str) -> None:
        """Remove one image's record (the caller removes its bytes)."""
        await self.dynamodb.delete_item(TableName=self.table, Key=to_item({"modelId": model_id, "dataId": data_id}))

    async def set_description(self, model_id: str, data_id: str, description: str | None) -> TrainingImageRecord | None:
        """Set (None: remove) an image's caption in place, leaving every other field as it is, so a validation or
        an automatic caption written meanwhile keeps its write; None when the image is gone."""
        now = {":now": serialize(utcnow().isoformat())}
        if description is None:
            expression, values = "REMOVE description SET updatedAt = :now", now
        else:
            expression, values = (
                "SET description = :description, updatedAt = :now",
                {
                    **now,
                    ":description": serialize(description),
                },
            )
        try:
            response = await self.dynamodb.update_item(
                TableName=self.table,
                Key=to_item({"modelId": model_id, "dataId": data_id}),
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(modelId)",
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return None
            raise
        return TrainingImageRecord.model_validate(from_item(response["Attributes"]))

    # --- issue 16: captions ---
    async def record_automatic_caption(self, model_id: str, data_id: str, key: str, caption: str) -> bool:
        """Set an image's automatic caption, if the image still exists with the bytes at `key` (a replaced image
        is not the one captioned) and does not already say it; False when nothing changed."""
        try:
            await self.dynamodb.update_item(
                TableName=self.table,
                Key=to_item({"modelId": model_id, "dataId": data_id}),
                UpdateExpression="SET automaticCaptioning = :caption, updatedAt = :now",
                ConditionExpression="attribute_exists(modelId) AND #key = :key AND "
                "(attribute_not_exists(automaticCaptioning) OR automaticCaptioning <> :caption)",
                ExpressionAttributeNames={"#key": "key"},
                ExpressionAttributeValues={
                    ":caption": serialize(caption),
                    ":key": serialize(key),
                    ":now": serialize(utcnow().isoformat()),
                },
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True
