"""What `GET /v1/admin/status` reports: each backing service checked with its latency (or its error), every
consumer group's lag, jobs by kind and status, and the live workers of the registry. A component that is down
is reported, not raised: the operator asks precisely when something is wrong."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

from events.topics import JOB_LIFECYCLE
from functions.api.schemas.admin_status import ComponentOut, JobCountOut, JobCountsOut, LagOut, StatusOut
from infra.consumer_lag import WorkerGroup, measure_lag, worker_groups
from infra.repositories.status_counts import count_all
from infra.repositories.workers import WorkerRepository
from infra.settings import Settings

# Each check's bound: an unreachable service must not hold the operator's command for a client's whole retry.
CHECK_TIMEOUT_S = 10.0


def consumer_groups(settings: Settings) -> tuple[WorkerGroup, ...]:
    """The groups whose lag matters: the workers' (what the deployment scales on) and the lifecycle consumers'."""
    return (
        *worker_groups(settings),
        WorkerGroup(settings.kafka_portraits_consumer_group, JOB_LIFECYCLE),
        WorkerGroup(settings.kafka_webhooks_consumer_group, JOB_LIFECYCLE),
    )


def _error(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {CHECK_TIMEOUT_S:g} s"
    return f"{type(exc).__name__}: {exc}"[:300]


async def _timed(name: str, check: Awaitable[Any], detail: str) -> tuple[ComponentOut, Any]:
    started = time.perf_counter()
    try:
        result = await asyncio.wait_for(check, CHECK_TIMEOUT_S)
    except Exception as exc:
        elapsed = round((time.perf_counter() - started) * 1000, 1)
        return ComponentOut(name=name, ok=False, latencyMs=elapsed, detail=_error(exc)), None
    elapsed = round((time.perf_counter() - started) * 1000, 1)
    return ComponentOut(name=name, ok=True, latencyMs=elapsed, detail=detail), result


async def gather_status(settings: Settings, dynamodb: Any, s3: Any) -> StatusOut:
    """Check everything at once; `dynamodb` and `s3` are the API's clients."""
    groups = consumer_groups(settings)
    (table, _), (bucket, _), (kafka, lags), (_, counts), (_, workers) = await asyncio.gather(
        _timed("dynamodb", dynamodb.describe_table(TableName=settings.jobs_table), f"table {settings.jobs_table}"),
        _timed("s3", s3.head_bucket(Bucket=settings.bucket), f"bucket {settings.bucket}"),
        _timed("kafka", measure_lag(settings, groups), f"brokers {settings.kafka_bootstrap_servers}"),
        _timed("jobs", count_all(dynamodb, settings.jobs_table), ""),
        _timed("workers", WorkerRepository(dynamodb, settings.workers_table).live(), ""),
    )
    api = ComponentOut(name="api", ok=True, latencyMs=0.0, detail="answering this request")
    components = [api, table, bucket, kafka]
    return StatusOut(
        ok=all(c.ok for c in components),
        components=components,
        consumerLag=[LagOut(group=m.group.group_id, topic=m.group.topic, lag=m.lag) for m in lags or ()],
        lagError=None if kafka.ok else kafka.detail,
        jobs=None
        if counts is None
        else JobCountsOut(
            counts=[
                JobCountOut(kind=kind, status=status, count=n) for (kind, status), n in sorted(counts.counts.items())
            ],
            complete=counts.complete,
        ),
        workers=workers or [],
    )
