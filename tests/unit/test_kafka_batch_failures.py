"""Lambda's Kafka batches answered with partial batch responses: per topic-partition, the first record that
fails is reported and nothing after it in that partition is acted on; other partitions go on. No network: the
producer (for the DLQ) and the actions are fakes."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from events.envelope import kafka_headers
from events.lifecycle import JobLifecycle
from events.records.jobs import GenerationJob
from events.states import GenerationStatus
from events.topics import DEAD_LETTERS, JOB_LIFECYCLE
from events.usecases.lifecycle import lifecycle_event
from functions.kafka_events import each_lifecycle_event
from tests.support import generation_request


def job_event(job_id: str) -> bytes:
    """A valid lifecycle event (structured mode) for a generation job."""
    job = GenerationJob(jobId=job_id, tenantId="tenant-a", request=generation_request(job_id))
    return lifecycle_event(job, GenerationStatus.COMPLETED, "/test").to_json_bytes()


def msk_record(partition: int, offset: int, value: bytes, key: bytes = b"k") -> dict[str, Any]:
    """One record of an MSK event, as Lambda sends it (base64 key and value, headers as byte lists)."""
    return {
        "topic": JOB_LIFECYCLE,
        "partition": partition,
        "offset": offset,
        "timestamp": 1795000000000,
        "timestampType": "CREATE_TIME",
        "key": base64.b64encode(key).decode(),
        "value": base64.b64encode(value).decode(),
        "headers": [{name: list(data)} for name, data in kafka_headers()],
    }


def msk_event(*records: dict[str, Any]) -> dict[str, Any]:
    """Lambda's event for an MSK event source mapping: records grouped by "topic-partition"."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        grouped.setdefault(f"{record['topic']}-{record['partition']}", []).append(record)
    return {
        "eventSource": "aws:kafka",
        "eventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/lorafoundry/abc",
        "bootstrapServers": "b-1.lorafoundry.kafka.us-east-1.amazonaws.com:9098",
        "records": grouped,
    }


class FakeProducer:
    """Takes dead letters, or refuses them as a broker that is down does."""

    def __init__(self, *, down: bool = False) -> None:
        self.down = down
        self.sent: list[tuple[str, bytes | None]] = []

    async def send_and_wait(self, topic: str, value: bytes | None = None, key: bytes | None = None, headers=()) -> None:
        if self.down:
            raise KafkaConnectionError("broker down")
        self.sent.append((topic, value))


class Recorder:
    """An action that records the job ids it saw and fails on the given ones."""

    def __init__(self, failing: set[str] = frozenset()) -> None:
        self.failing = failing
        self.seen: list[str] = []

    async def __call__(self, lifecycle: JobLifecycle) -> None:
        self.seen.append(lifecycle.subject)
        if lifecycle.subject in self.failing:
            raise RuntimeError(f"cannot act on {lifecycle.subject}")


async def test_one_failing_record_reports_only_its_partition_from_its_offset() -> None:
    event = msk_event(
        msk_record(0, 3, job_event("a0")),
        msk_record(0, 4, job_event("a1")),
        msk_record(1, 10, job_event("b0")),
        msk_record(1, 11, job_event("b1")),
        msk_record(1, 12, job_event("b2")),
    )
    act = Recorder(failing={"b1"})

    response = await each_lifecycle_event(FakeProducer(), event, act)

    assert response == {"batchItemFailures": [{"itemIdentifier": {"partition": f"{JOB_LIFECYCLE}-1", "offset": 11}}]}
    # b2 comes after the failure in its partition: it is left for the redelivery, not acted on out of order.
    assert act.seen == ["a0", "a1", "b0", "b1"]


async def test_a_clean_batch_reports_nothing_and_acts_in_offset_order() -> None:
    event = msk_event(msk_record(0, 8, job_event("second")), msk_record(0, 7, job_event("first")))
    act = Recorder()

    assert await each_lifecycle_event(FakeProducer(), event, act) == {"batchItemFailures": []}
    assert act.seen == ["first", "second"]


async def test_a_record_that_is_no_lifecycle_event_is_dead_lettered_not_reported() -> None:
    producer = FakeProducer()
    act = Recorder()
    event = msk_event(msk_record(0, 1, b"garbage"), msk_record(0, 2, job_event("after")))

    assert await each_lifecycle_event(producer, event, act) == {"batchItemFailures": []}
    assert producer.sent == [(DEAD_LETTERS, b"garbage")]
    assert act.seen == ["after"]


async def test_a_record_that_cannot_be_dead_lettered_is_the_failure_of_that_record() -> None:
    act = Recorder()
    event = msk_event(
        msk_record(0, 5, job_event("before")),
        msk_record(0, 6, b"garbage"),
        msk_record(0, 7, job_event("after")),
        msk_record(2, 0, job_event("elsewhere")),
    )

    response = await each_lifecycle_event(FakeProducer(down=True), event, act)

    assert response == {"batchItemFailures": [{"itemIdentifier": {"partition": f"{JOB_LIFECYCLE}-0", "offset": 6}}]}
    assert act.seen == ["before", "elsewhere"]


class FakeContext:
    """What the lifecycle handlers read from their ServiceContext before a use case does: the producer (and the
    portraits handler renews the registered base models)."""

    def __init__(self) -> None:
        self.producer = FakeProducer()

    async def refresh_base_models(self) -> dict[str, Any]:
        return {}


async def test_the_portraits_handler_answers_with_the_partial_batch_response(monkeypatch) -> None:
    import functions.portraits.handler as portraits

    act = Recorder(failing={"p1"})

    async def on_lifecycle(_context: Any, lifecycle: JobLifecycle) -> None:
        await act(lifecycle)

    monkeypatch.setattr(portraits, "on_lifecycle", on_lifecycle)
    event = msk_event(msk_record(3, 40, job_event("p1")), msk_record(3, 41, job_event("p2")))

    response = await portraits.process_kafka_event(FakeContext(), event)  # type: ignore[arg-type]

    assert response == {"batchItemFailures": [{"itemIdentifier": {"partition": f"{JOB_LIFECYCLE}-3", "offset": 40}}]}
    assert act.seen == ["p1"]


class FakeDispatcher:
    """Stands in for the webhooks dispatcher: records lifecycle events, fails on one, sweeps a fixed count."""

    act = Recorder(failing={"w2"})

    def __init__(self, _context: Any) -> None:
        pass

    async def on_lifecycle(self, lifecycle: JobLifecycle) -> None:
        await self.act(lifecycle)

    async def sweep(self) -> int:
        return 3


@pytest.fixture
def webhooks(monkeypatch):
    import functions.webhooks.handler as module

    FakeDispatcher.act = Recorder(failing={"w2"})
    monkeypatch.setattr(module, "Dispatcher", FakeDispatcher)
    return module


async def test_the_webhooks_handler_answers_kafka_batches_with_the_partial_batch_response(webhooks) -> None:
    event = msk_event(
        msk_record(0, 1, job_event("w1")),
        msk_record(0, 2, job_event("w2")),
        msk_record(0, 3, job_event("w3")),
        msk_record(1, 9, job_event("w4")),
    )

    response = await webhooks.process_event(FakeContext(), event)

    assert response == {"batchItemFailures": [{"itemIdentifier": {"partition": f"{JOB_LIFECYCLE}-0", "offset": 2}}]}
    assert FakeDispatcher.act.seen == ["w1", "w2", "w4"]


async def test_the_webhooks_schedule_still_sweeps(webhooks) -> None:
    scheduled = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}

    assert await webhooks.process_event(FakeContext(), scheduled) == {"attempted": 3}
