"""The local Kafka event source honours a partial batch response as Lambda's mapping does: a reported
partition resumes from the reported offset, the others go on past their last record; and a commit lost to a
rebalance does not stop it."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError

from infra.local import kafka_source
from infra.local.kafka_source import resume_offsets
from infra.settings import Settings


def _records(topic: str, partition: int, offsets: range) -> list[ConsumerRecord]:
    return [ConsumerRecord(topic, partition, offset, 0, 0, None, b"v", None, 0, 1, []) for offset in offsets]


BATCH = {
    TopicPartition("lifecycle", 0): _records("lifecycle", 0, range(10, 13)),
    TopicPartition("lifecycle", 1): _records("lifecycle", 1, range(4, 6)),
}


def test_a_whole_success_commits_past_every_partitions_last_record() -> None:
    assert resume_offsets(BATCH, {"batchItemFailures": []}) == {
        TopicPartition("lifecycle", 0): 13,
        TopicPartition("lifecycle", 1): 6,
    }


def test_no_response_counts_as_a_whole_success() -> None:
    assert resume_offsets(BATCH, None)[TopicPartition("lifecycle", 0)] == 13


def test_a_reported_partition_resumes_from_its_failed_offset_and_the_other_goes_on() -> None:
    response = {"batchItemFailures": [{"itemIdentifier": {"partition": "lifecycle-0", "offset": 11}}]}
    assert resume_offsets(BATCH, response) == {
        TopicPartition("lifecycle", 0): 11,
        TopicPartition("lifecycle", 1): 6,
    }


class RebalancedConsumer:
    """A consumer whose first commit is lost to a rebalance, as aiokafka raises it when the group moved on."""

    def __init__(self, batches: list[dict], stop: asyncio.Event) -> None:
        self.batches, self.stop_event = batches, stop
        self.commits: list[dict] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def getmany(self, timeout_ms: int, max_records: int) -> dict:
        if not self.batches:
            self.stop_event.set()
            return {}
        return self.batches.pop(0)

    async def commit(self, offsets: dict) -> None:
        self.commits.append(offsets)
        if len(self.commits) == 1:
            raise CommitFailedError("the group has already rebalanced")

    def seek(self, tp: TopicPartition, offset: int) -> None:
        raise AssertionError("a batch whose commit was lost is redelivered by the group, not sought back")


def test_a_commit_lost_to_a_rebalance_leaves_the_source_running(monkeypatch: pytest.MonkeyPatch) -> None:
    stop = asyncio.Event()
    later = {TopicPartition("lifecycle", 0): _records("lifecycle", 0, range(13, 14))}
    consumer = RebalancedConsumer([BATCH, later], stop)
    monkeypatch.setattr(kafka_source, "create_consumer", lambda *args, **kwargs: consumer)
    handled: list[int] = []

    def handler(event: dict, context: object) -> dict:
        handled.append(sum(len(records) for records in event["records"].values()))
        return {"batchItemFailures": []}

    asyncio.run(kafka_source.run_kafka_source(Settings(), "lifecycle", "group", handler, stop))
    assert handled == [5, 1], "the batch after the lost commit was handled"
    assert consumer.commits[1] == {TopicPartition("lifecycle", 0): 14}
