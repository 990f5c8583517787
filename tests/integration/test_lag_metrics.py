"""The lag-metrics function against the real broker and moto's CloudWatch: the lag it publishes per worker group
is what the group has committed against what the topics hold."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import TopicPartition

from events.topics import GENERATION_REQUESTS, TRAINING_REQUESTS
from functions.lag_metrics.handler import LagMetricsLambda
from infra.aws import create_client
from infra.bootstrap import ensure_topics
from infra.consumer_lag import DIMENSION, METRIC_NAME, NAMESPACE
from infra.kafka import create_consumer, create_producer
from infra.resources import resources_for
from tests.conftest import Broker

pytestmark = pytest.mark.integration

SCHEDULED = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}


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
    """`count` records on one partition (no valid command: the lag counts offsets, not content)."""
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


@pytest.fixture(scope="module")
async def own_broker(bootstrapped, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator:
    """Settings on a broker of this module's own, its topics made as the bootstrap makes them: no other test's
    records are on it, so each group's lag is known exactly. Fresh groups, and moto as the session's."""
    broker = Broker(tmp_path_factory.mktemp("lag-metrics"))
    broker.start()
    marker = secrets.token_hex(4)
    settings = bootstrapped.model_copy(
        update={
            "kafka_bootstrap_servers": broker.bootstrap_servers,
            "kafka_consumer_group": f"lag-gen-{marker}",
            "kafka_training_consumer_group": f"lag-trn-{marker}",
        }
    )
    try:
        await ensure_topics(settings, resources_for(settings))
        yield settings
    finally:
        broker.stop()


async def test_the_handler_publishes_each_worker_groups_lag(own_broker) -> None:
    settings = own_broker
    generators, trainers = settings.kafka_consumer_group, settings.kafka_training_consumer_group

    # Generators: 5 commands on partition 0 and 2 on partition 1; they finished 2 of the first and both others.
    await produce(settings, GENERATION_REQUESTS, 0, 5)
    await produce(settings, GENERATION_REQUESTS, 1, 2)
    await commit_as(
        settings, generators, {TopicPartition(GENERATION_REQUESTS, 0): 2, TopicPartition(GENERATION_REQUESTS, 1): 2}
    )
    # Trainers: 3 on partition 0, finished; 4 on partition 1, which they never committed: it counts from its
    # earliest offset, so all 4 are their lag.
    await produce(settings, TRAINING_REQUESTS, 0, 3)
    await produce(settings, TRAINING_REQUESTS, 1, 4)
    await commit_as(settings, trainers, {TopicPartition(TRAINING_REQUESTS, 0): 3})

    result = await asyncio.to_thread(LagMetricsLambda(lambda: settings), SCHEDULED, None)

    assert result == {"lag": {generators: 3, trainers: 4}}
    assert await read_metric(settings, generators) == [3.0]
    assert await read_metric(settings, trainers) == [4.0]

    # A group that catches up has no lag left.
    await commit_as(settings, generators, {TopicPartition(GENERATION_REQUESTS, 0): 5})
    result = await asyncio.to_thread(LagMetricsLambda(lambda: settings), SCHEDULED, None)
    assert result["lag"][generators] == 0
