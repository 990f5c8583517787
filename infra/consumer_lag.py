"""Consumer-group lag of the GPU workers, measured on the broker and published to CloudWatch, where the ECS
services scale on it (generators and trainers apart).

Lag of a group = the sum over its command topic's partitions of (log end offset - committed offset); a
partition the group never committed counts from its earliest offset, since the group will start there
(`auto_offset_reset="earliest"`, `infra/kafka.py:create_consumer`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from events.topics import GENERATION_REQUESTS, TRAINING_REQUESTS
from infra.kafka import admin_kwargs, create_consumer
from infra.kafka_auth import resolve_kafka_settings
from infra.settings import Settings

log = logging.getLogger(__name__)

# The metric the scaling policies of the deployment name (infra/deploy): one series per consumer group.
NAMESPACE = "LoRAFoundry"
METRIC_NAME = "ConsumerLag"
DIMENSION = "ConsumerGroup"


@dataclass(frozen=True)
class WorkerGroup:
    """A consumer group of GPU workers and the command topic it reads."""

    group_id: str
    topic: str


def worker_groups(settings: Settings) -> tuple[WorkerGroup, ...]:
    """The generators' and the trainers' groups, as `workers/generator` and `workers/trainer` declare them in
    their WorkerSpec (infra cannot import workers/, so the pairs are restated here)."""
    return (
        WorkerGroup(settings.kafka_consumer_group, GENERATION_REQUESTS),
        WorkerGroup(settings.kafka_training_consumer_group, TRAINING_REQUESTS),
    )


def partition_lag(end: int, earliest: int, committed: int | None) -> int:
    """Records of one partition the group has still to read. `committed` None (or Kafka's -1) means never
    committed: the group starts at the earliest offset. A commit below the earliest (records deleted by
    retention) counts from the earliest, since those records can no longer be read."""
    start = earliest if committed is None or committed < 0 else max(committed, earliest)
    return max(0, end - start)


def group_lag(end: Mapping[int, int], earliest: Mapping[int, int], committed: Mapping[int, int | None]) -> int:
    """The sum of `partition_lag` over the partitions of `end` (partition number -> log end offset)."""
    return sum(partition_lag(offset, earliest.get(p, 0), committed.get(p)) for p, offset in end.items())


@dataclass(frozen=True)
class GroupLag:
    """One group's lag at one measurement."""

    group: WorkerGroup
    lag: int


async def _partitions(admin: AIOKafkaAdminClient, topic: str) -> list[TopicPartition]:
    described = await admin.describe_topics([topic])
    numbers = [p["partition"] for t in described if t["topic"] == topic for p in t["partitions"]]
    if not numbers:
        raise LookupError(f"topic {topic!r} has no partitions (not created yet?)")
    return [TopicPartition(topic, n) for n in sorted(numbers)]


async def measure_lag(settings: Settings, groups: Sequence[WorkerGroup]) -> list[GroupLag]:
    """Each group's lag, read from the broker (offsets only: no record is fetched, no group is joined)."""
    settings = await resolve_kafka_settings(settings)  # on AWS: the brokers and credentials named by ARN
    admin = AIOKafkaAdminClient(**admin_kwargs(settings))
    # No group: this consumer only asks for offsets, so it must not join (and rebalance) the workers' group.
    consumer = create_consumer(settings, group_id=None)  # type: ignore[arg-type]
    try:
        await admin.start()
        await consumer.start()
        measured: list[GroupLag] = []
        for group in groups:
            partitions = await _partitions(admin, group.topic)
            end = await consumer.end_offsets(partitions)
            earliest = await consumer.beginning_offsets(partitions)
            committed = await admin.list_consumer_group_offsets(group.group_id, partitions=partitions)
            lag = group_lag(
                {tp.partition: offset for tp, offset in end.items()},
                {tp.partition: offset for tp, offset in earliest.items()},
                {tp.partition: meta.offset for tp, meta in committed.items()},
            )
            measured.append(GroupLag(group, lag))
        return measured
    finally:
        try:
            await consumer.stop()
        finally:
            await admin.close()


def metric_data(lags: Sequence[GroupLag]) -> list[dict[str, Any]]:
    """PutMetricData's MetricData for the measured lags."""
    return [
        {
            "MetricName": METRIC_NAME,
            "Dimensions": [{"Name": DIMENSION, "Value": item.group.group_id}],
            "Value": float(item.lag),
            "Unit": "Count",
        }
        for item in lags
    ]


async def publish_lag(cloudwatch: Any, lags: Sequence[GroupLag]) -> None:
    """Put the lags into CloudWatch (one call: PutMetricData takes up to 1,000 values)."""
    await cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=metric_data(lags))
    for item in lags:
        log.info("consumer lag of %s on %s: %d", item.group.group_id, item.group.topic, item.lag)
