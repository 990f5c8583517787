"""Live workers: each worker process keeps its record in the workers table fresh while it runs and deletes it on a
clean stop; a killed one's record expires (`expiresAt`, the table's TTL).

DynamoDB deletes expired items lazily (within days; moto never does), so `live()` filters on `expiresAt` itself.
"""

from __future__ import annotations

import time
from typing import Any

from events.records.workers import WorkerRecord
from infra.repositories.dynamo import from_item, record_item, serialize, to_item


class WorkerRepository:
    """The workers table."""

    def __init__(self, dynamodb: Any, table: str) -> None:
        self.dynamodb = dynamodb
        self.table = table

    async def put(self, record: WorkerRecord) -> None:
        """Write (or refresh) one worker's record: the worker owns its item, so a plain put."""
        await self.dynamodb.put_item(TableName=self.table, Item=record_item(record))

    async def delete(self, worker_id: str) -> None:
        """Forget a worker that stopped cleanly."""
        await self.dynamodb.delete_item(TableName=self.table, Key=to_item({"workerId": worker_id}))

    async def live(self, now: float | None = None) -> list[WorkerRecord]:
        """Workers whose record has not expired, by kind then id. A Scan: the table holds one item per running
        worker (and the not yet deleted dead), a few dozen at most."""
        now = time.time() if now is None else now
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": "expiresAt > :now",
            "ExpressionAttributeValues": {":now": serialize(now)},
        }
        records: list[WorkerRecord] = []
        while True:
            response = await self.dynamodb.scan(**kwargs)
            records.extend(WorkerRecord.model_validate(from_item(item)) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return sorted(records, key=lambda r: (r.kind.value, r.workerId))
