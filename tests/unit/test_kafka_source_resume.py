"""The local Kafka event source honours a partial batch response as Lambda's mapping does: a reported
partition resumes from the reported offset, the others go on past their last record."""

from __future__ import annotations

from aiokafka import ConsumerRecord, TopicPartition

from infra.local.kafka_source import resume_offsets


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
