"""The lag arithmetic the GPU services scale on, and the metric it becomes (no broker, no CloudWatch)."""

from __future__ import annotations

from events.topics import GENERATION_REQUESTS, TRAINING_REQUESTS
from infra.consumer_lag import GroupLag, WorkerGroup, group_lag, metric_data, partition_lag, worker_groups
from infra.settings import Settings


def test_a_committed_partition_lags_by_what_follows_its_commit() -> None:
    assert partition_lag(end=10, earliest=0, committed=7) == 3
    assert partition_lag(end=10, earliest=0, committed=10) == 0


def test_a_partition_never_committed_counts_from_its_earliest_offset() -> None:
    assert partition_lag(end=10, earliest=4, committed=None) == 6
    assert partition_lag(end=10, earliest=4, committed=-1) == 6  # Kafka's "no offset"


def test_a_commit_below_the_retained_records_counts_from_the_earliest() -> None:
    assert partition_lag(end=10, earliest=8, committed=3) == 2


def test_the_group_lag_sums_its_partitions() -> None:
    end = {0: 10, 1: 5, 2: 0}
    assert group_lag(end, {0: 0, 1: 2, 2: 0}, {0: 9, 2: -1}) == 1 + 3 + 0


def test_each_worker_group_is_paired_with_its_command_topic() -> None:
    settings = Settings(_env_file=None, kafka_consumer_group="g", kafka_training_consumer_group="t")  # type: ignore[call-arg]
    assert worker_groups(settings) == (WorkerGroup("g", GENERATION_REQUESTS), WorkerGroup("t", TRAINING_REQUESTS))


def test_the_metric_is_one_count_per_group() -> None:
    data = metric_data([GroupLag(WorkerGroup("gens", GENERATION_REQUESTS), 7)])
    assert data == [
        {
            "MetricName": "ConsumerLag",
            "Dimensions": [{"Name": "ConsumerGroup", "Value": "gens"}],
            "Value": 7.0,
            "Unit": "Count",
        }
    ]
