"""The lag-metrics function against the real broker and moto's CloudWatch: the lag it publishes per worker group
is what the group has committed against what the topics hold."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import TopicPartition

from events.topics import GENERATION_REQUESTS, TRAINING_REQUESTS
from functions.lag_metrics.handler import LagMetricsLambda
from infra.aws import create_client
from infra.consumer_lag import DIMENSION, METRIC_NAME, NAMESPACE
from infra.kafka import create_consumer, create_producer

pytestmark = pytest.mark.integration

SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


async def end_offsets(settings, topic: str) -> dict[TopicPartition, int]:
    """Every partition's log end offset (the bootstrap made `kafka_partitions` of them), read outside any group."""
    consumer = create_consumer(settings, group_id=None)
    await consumer.start()
    try:
        return await consumer.end_offsets([TopicPartition(topic, p) for p in range(settings.kafka_partitions)])
    finally:
        await consumer.stop()


async def commit_as(settings, group_id: str, offsets: dict[TopicPartition, int]) -> None:
    """Commit `offsets` as `group_id`, as a worker of that group does once a job's outcome is durable."""
    consumer = create_consumer(settings, group_id=group_id)
    consumer.assign(list(offsets))
    await consumer.start()
    try:
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


async def produce(settings, topic: str, partition: int, count: int) -> None:
    """`count` records on one partition. They are no valid command on purpose: a worker of the session's own
    group that reads them dead-letters them instead of running a job; the lag counts offsets, not content."""
    producer = create_producer(settings)
    await producer.start()
    try:
        for n in range(count):
            await producer.send_and_wait(topic, value=f"lag-probe-{n}".encode(), key=b"lag", partition=partition)
    finally:
        await producer.stop()


async def read_metric(settings, group_id: str) -> list[float]:
    """The ConsumerLag values CloudWatch holds for one group (the last ten minutes, one-minute maximums)."""
    now = datetime.now(UTC)
    async with create_client(settings, "cloudwatch") as cloudwatch:
        listed = await cloudwatch.list_metrics(Namespace=NAMESPACE, MetricName=METRIC_NAME)
        assert {"Name": DIMENSION, "Value": group_id} in [d for m in listed["Metrics"] for d in m["Dimensions"]]
        data = await cloudwatch.get_metric_data(
            MetricDataQueries=[
                {
                    "Id": "lag",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": NAMESPACE,
                            "MetricName": METRIC_NAME,
                            "Dimensions": [{"Name": DIMENSION, "Value": group_id}],
                        },
                        "Period": 60,
                        "Stat": "Maximum",
                    },
                }
            ],
            StartTime=now - timedelta(minutes=10),
            EndTime=now + timedelta(minutes=1),
        )
    return data["MetricDataResults"][0]["Values"]


async def test_the_handler_publishes_each_worker_groups_lag(bootstrapped) -> None:
    marker = secrets.token_hex(4)
    settings = bootstrapped.model_copy(
        update={"kafka_consumer_group": f"lag-gen-{marker}", "kafka_training_consumer_group": f"lag-trn-{marker}"}
    )

    # Generators: caught up everywhere, then 5 new commands on partition 0 of which they finished 2.
    generation_end = await end_offsets(settings, GENERATION_REQUESTS)
    await commit_as(settings, settings.kafka_consumer_group, generation_end)
    await produce(settings, GENERATION_REQUESTS, 0, 5)
    first = TopicPartition(GENERATION_REQUESTS, 0)
    await commit_as(settings, settings.kafka_consumer_group, {first: generation_end[first] + 2})

    # Trainers: caught up everywhere but partition 1, which they never committed; it counts from its earliest
    # offset, so all it holds (what other tests wrote there too, and 4 more now) is their lag.
    training_end = await end_offsets(settings, TRAINING_REQUESTS)
    never = TopicPartition(TRAINING_REQUESTS, 1)
    await commit_as(
        settings, settings.kafka_training_consumer_group, {tp: o for tp, o in training_end.items() if tp != never}
    )
    await produce(settings, TRAINING_REQUESTS, 1, 4)
    consumer = create_consumer(settings, group_id=None)
    await consumer.start()
    try:
        earliest = (await consumer.beginning_offsets([never]))[never]
    finally:
        await consumer.stop()
    training_lag = training_end[never] + 4 - earliest
    assert training_lag >= 4

    result = await asyncio.to_thread(LagMetricsLambda(lambda: settings), SCHEDULED, None)

    assert result == {"lag": {settings.kafka_consumer_group: 3, settings.kafka_training_consumer_group: training_lag}}
    assert await read_metric(settings, settings.kafka_consumer_group) == [3.0]
    assert await read_metric(settings, settings.kafka_training_consumer_group) == [float(training_lag)]
