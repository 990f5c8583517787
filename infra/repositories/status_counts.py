"""How many jobs there are: a tenant's queued or running ones (its quotas), everyone's by kind and status (the
metrics' gauges, `lorafoundry status`). Active jobs are counted on the jobs table's sparse indexes (`byQueue`
holds only waiting jobs, `byInFlight` only held ones), so a count costs what the whole system has active, never
a tenant's history; only `count_all` reads the whole table, and stops at a bound."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from events.states import MACHINE_FOR_KIND, RUNNING_FOR_KIND, JobKind
from infra.repositories.dynamo import count_all_pages, serialize
from infra.repositories.jobs import IN_FLIGHT_ATTRIBUTE, QUEUE_ATTRIBUTE, QUEUE_FOR_KIND
from infra.resources import JOBS_IN_FLIGHT_INDEX, JOBS_QUEUE_INDEX

# What `count_all` reads of the whole table before it stops and says its counts are incomplete.
COUNT_ALL_MAX_ITEMS = 100_000


async def count_active(dynamodb: Any, table: str) -> dict[tuple[str, str], int]:
    """Every tenant's queued and running jobs, by (kind, status), for the kinds that wait for workers."""
    counts: dict[tuple[str, str], int] = {}
    for kind, partition in QUEUE_FOR_KIND.items():
        for index, attribute, status in (
            (JOBS_QUEUE_INDEX, QUEUE_ATTRIBUTE, MACHINE_FOR_KIND[kind].initial),
            (JOBS_IN_FLIGHT_INDEX, IN_FLIGHT_ATTRIBUTE, RUNNING_FOR_KIND[kind]),
        ):
            assert status is not None  # every kind with a queue has a running status
            counts[(kind.value, status.value)] = await count_all_pages(
                dynamodb,
                TableName=table,
                IndexName=index,
                KeyConditionExpression="#part = :p",
                FilterExpression="#status = :s",
                ExpressionAttributeNames={"#part": attribute, "#status": "status"},
                ExpressionAttributeValues={":p": serialize(partition), ":s": serialize(status.value)},
            )
    return counts


@dataclass(frozen=True)
class JobCounts:
    """Jobs by (kind, status); `complete` is False when the table held more than the scan's bound."""

    counts: dict[tuple[str, str], int]
    complete: bool


async def count_all(dynamodb: Any, table: str, max_items: int = COUNT_ALL_MAX_ITEMS) -> JobCounts:
    """Every job by (kind, status), terminal ones too: a Scan reading only those two attributes, stopped after
    `max_items` items (an operator's call, not a request's)."""
    counts: dict[tuple[str, str], int] = {}
    kwargs: dict[str, Any] = {
        "TableName": table,
        "ProjectionExpression": "#kind, #status",
        "ExpressionAttributeNames": {"#kind": "kind", "#status": "status"},
    }
    seen = 0
    while True:
        response = await dynamodb.scan(**kwargs)
        for item in response.get("Items", []):
            # A generation item from before every writer set `kind` has none.
            kind = item.get("kind", {}).get("S", JobKind.GENERATION.value)
            status = item.get("status", {}).get("S", "unknown")
            counts[(kind, status)] = counts.get((kind, status), 0) + 1
        seen += response.get("ScannedCount", len(response.get("Items", [])))
        if "LastEvaluatedKey" not in response:
            return JobCounts(counts, complete=True)
        if seen >= max_items:
            return JobCounts(counts, complete=False)
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
