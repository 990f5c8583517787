"""Direct producers: an external Kafka producer publishes CloudEvents straight to the command topic. Valid ones
run exactly as the API would run them and show in the API; invalid ones land in the DLQ with their reason and
never block the partition. Two clients: aiokafka (pure Python) and librdkafka (through confluent-kafka), the
client most non-Java producers are built on."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any

import confluent_kafka
import pytest
from aiokafka import AIOKafkaProducer

from events.records.jobs import TrainingJob
from events.states import TrainingStatus
from events.topics import DEAD_LETTERS, GENERATION_REQUESTS, TRAINING_REQUESTS
from events.training import TrainingParameters
from tests.journeys import create_model, png, upload
from tests.support import bearer, eventually, read_topic, wait_for_job

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("worker")]


@pytest.fixture
async def producer(settings) -> AsyncIterator[AIOKafkaProducer]:
    """A producer of another team: plain aiokafka, nothing of ours."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


@pytest.fixture
def librdkafka_producer(settings) -> Iterator[confluent_kafka.Producer]:
    """A producer of another team on librdkafka (confluent-kafka; see docs/events.md for the versions that work
    with the embedded broker)."""
    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap_servers,
            "acks": "all",
            # Tansu has no InitProducerId (as for the service's own producers: LF_KAFKA_IDEMPOTENCE=false).
            "enable.idempotence": False,
        }
    )
    try:
        yield producer
    finally:
        producer.flush(10)


def generation(job_id: str, tenant: str = "tenant-a", **data: Any) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": secrets.token_hex(8),
        "source": "/partner/batch",
        "type": "ai.lorafoundry.generation.requested.v1",
        "subject": job_id,
        "tenantid": tenant,
        "datacontenttype": "application/json",
        "data": {
            "jobId": job_id,
            "modelId": "tiny-sd",
            "baseModel": "tiny-sd",
            "prompt": "a lighthouse at dawn",
            "width": 64,
            "height": 64,
            "guidanceScale": 7.5,
            "numOutputs": 1,
            "numInferenceSteps": 2,
            "seed": 3,
            **data,
        },
    }


async def wait_for_direct_job(client, job_id: str, key: str) -> dict[str, Any]:
    """The job's view once it ended; its record exists only once a worker took the event (404 until then)."""

    async def probe() -> dict[str, Any] | None:
        response = await client.get(f"/v1/images/jobs/{job_id}", headers=bearer(key))
        assert response.status_code in (200, 404), response.text
        return response.json() if response.status_code == 200 else None

    return await eventually(
        probe, lambda v: v is not None and v["status"] in ("completed", "failed"), what=f"direct job {job_id}"
    )


async def send(producer: AIOKafkaProducer, event: dict[str, Any] | bytes, key: str) -> None:
    value = event if isinstance(event, bytes) else json.dumps(event).encode()
    await producer.send_and_wait(
        GENERATION_REQUESTS,
        value=value,
        key=key.encode(),
        headers=[("content-type", b"application/cloudevents+json")],
    )


async def produce(producer: confluent_kafka.Producer, value: bytes, key: str, headers: list[tuple[str, bytes]]) -> None:
    """Produce one generation command with librdkafka and wait for the broker's acknowledgement."""
    errors: list[Any] = []
    producer.produce(
        GENERATION_REQUESTS, value=value, key=key.encode(), headers=headers, on_delivery=lambda e, _: errors.append(e)
    )
    # librdkafka delivers from its own thread; flush (which runs the delivery callback) blocks, so not in this loop.
    left = await asyncio.to_thread(producer.flush, 30)
    assert left == 0 and errors == [None], f"not acknowledged: {errors}"


async def test_a_librdkafka_producers_events_run_or_are_dead_lettered(
    client, api_key, librdkafka_producer, settings
) -> None:
    run = secrets.token_hex(4)
    structured, binary, invalid = f"job_rdk_{run}_1", f"job_rdk_{run}_2", f"job_bad_rdk_{run}"
    content_type = [("content-type", b"application/cloudevents+json")]
    bad = generation(invalid, numInferenceSteps=500)
    await produce(librdkafka_producer, json.dumps(bad).encode(), invalid, content_type)
    await produce(librdkafka_producer, json.dumps(generation(structured)).encode(), structured, content_type)
    envelope = generation(binary, seed=6)
    ce_headers = [(f"ce_{k}", str(v).encode()) for k, v in envelope.items() if k != "data"]
    await produce(librdkafka_producer, json.dumps(envelope["data"]).encode(), binary, ce_headers)

    for job_id in (structured, binary):
        view = await wait_for_direct_job(client, job_id, api_key)
        assert view["status"] == "completed", view
        assert view["prompt"] == "a lighthouse at dawn" and len(view["images"]) == 1
    dead = await read_topic(settings, DEAD_LETTERS, lambda r: r.key == invalid.encode(), 1)
    headers = dict(dead[0].headers)
    assert "numInferenceSteps" in headers["dlq-reason"].decode()
    assert headers["dlq-topic"] == GENERATION_REQUESTS.encode()
    assert json.loads(dead[0].value) == bad  # unchanged
    missing = await client.get(f"/v1/images/jobs/{invalid}", headers=bearer(api_key))
    assert missing.status_code == 404


async def test_valid_events_run_and_invalid_ones_are_dead_lettered(client, api_key, producer, settings) -> None:
    run = secrets.token_hex(4)
    first, later, binary = f"job_direct_{run}_1", f"job_direct_{run}_2", f"job_direct_{run}_3"
    await send(producer, generation(first), first)
    invalid: list[tuple[str, dict[str, Any] | bytes]] = [
        (f"job_bad_{run}_json", b"{not json " + run.encode()),
        (f"job_bad_{run}_steps", generation(f"job_bad_{run}_steps", numInferenceSteps=500)),
        (f"job_bad_{run}_type", {**generation(f"job_bad_{run}_type"), "type": "ai.lorafoundry.nothing.v1"}),
        (
            f"job_bad_{run}_input",
            generation(
                f"job_bad_{run}_input",
                mode="image-to-image",
                initImageKey="uploads/tenant-b/upl_0123456789abcdef/image.png",  # another tenant's upload
            ),
        ),
    ]
    for key, event in invalid:
        await send(producer, event, key)
    await send(producer, generation(later, seed=4), later)
    # Binary mode: attributes in ce_ headers, the data alone as the value.
    envelope = generation(binary, seed=5)
    headers = [(f"ce_{k}", str(v).encode()) for k, v in envelope.items() if k != "data"]
    await producer.send_and_wait(
        GENERATION_REQUESTS, value=json.dumps(envelope["data"]).encode(), key=binary.encode(), headers=headers
    )

    for job_id in (first, later, binary):
        view = await wait_for_direct_job(client, job_id, api_key)
        assert view["status"] == "completed", view
        assert view["prompt"] == "a lighthouse at dawn" and len(view["images"]) == 1

    def mine(record: Any) -> bool:
        return run.encode() in (record.value or b"") or run.encode() in (record.key or b"")

    dead = await read_topic(settings, DEAD_LETTERS, mine, len(invalid))
    reasons = {r.key.decode(): dict(r.headers)["dlq-reason"].decode() for r in dead}
    assert "not JSON" in reasons[f"job_bad_{run}_json"]
    assert "numInferenceSteps" in reasons[f"job_bad_{run}_steps"]
    assert "nothing.v1" in reasons[f"job_bad_{run}_type"]
    assert "neither this job's input" in reasons[f"job_bad_{run}_input"]
    for record in dead:
        headers = dict(record.headers)
        assert headers["dlq-topic"] == GENERATION_REQUESTS.encode() and headers["dlq-offset"].isdigit()
    # Nothing invalid became a job.
    for key, _ in invalid:
        missing = await client.get(f"/v1/images/jobs/{key}", headers=bearer(api_key))
        assert missing.status_code == 404


async def test_a_direct_event_for_an_api_job_does_not_run_it_twice(client, api_key, producer) -> None:
    response = await client.post(
        "/v1/images/generate",
        json={"modelId": "tiny-sd", "prompt": "p", "numInferenceSteps": 2, "seed": 1},
        headers=bearer(api_key),
    )
    job_id = response.json()["jobId"]
    done = await wait_for_job(client, job_id, bearer(api_key))
    assert done["status"] == "completed"
    # A producer replays the same command (at-least-once delivery does this too).
    await send(producer, generation(job_id, prompt="p", seed=1), job_id)
    follower = f"job_follow_{secrets.token_hex(4)}"
    await send(producer, generation(follower), follower)
    assert (await wait_for_direct_job(client, follower, api_key))["status"] == "completed"
    again = await wait_for_job(client, job_id, bearer(api_key))
    assert again["completedAt"] == done["completedAt"]  # not run again: the worker skipped the finished job


def training(training_id: str, model_id: str, data_keys: list[str], tenant: str = "tenant-a") -> dict[str, Any]:
    parameters = TrainingParameters(
        learningRate=1e-3,
        learningRateTextEncoder=0,
        maxTrainSteps=6,
        rank=4,
        batchSize=1,
        nbEpochs=2,
        nbRepeats=1,
        seed=7,
        resolution=64,
        conceptPrompt="ZQXWVJK",
    )
    return {
        "specversion": "1.0",
        "id": secrets.token_hex(8),
        "source": "/partner/trainer",
        "type": "ai.lorafoundry.training.requested.v1",
        "subject": training_id,
        "tenantid": tenant,
        "data": {
            "trainingId": training_id,
            "modelId": model_id,
            "baseModel": "tiny-sd",
            "triggerWord": "ZQXWVJK",
            "dataKeys": data_keys,
            "parameters": parameters.model_dump(mode="json"),
        },
    }


@pytest.mark.usefixtures("trainer")
async def test_a_direct_training_runs_as_the_apis_would(client, api_key, context, producer, settings) -> None:
    model_id = (await create_model(client, api_key, name="direct"))["id"]
    await upload(client, api_key, model_id, png((250, 120, 10)))
    keys = [item.key for item in await context.training_data.list(model_id)]
    run = secrets.token_hex(4)
    good, foreign, stolen = f"trn_direct_{run}", f"trn_foreign_{run}", f"trn_stolen_{run}"
    # Another tenant naming this model: recorded for that tenant, failed, the model untouched.
    await producer.send_and_wait(
        TRAINING_REQUESTS, json.dumps(training(foreign, model_id, keys, tenant="tenant-b")).encode(), key=b"m"
    )
    # Another model's images: refused by the contract, dead-lettered.
    other = (await create_model(client, api_key, name="other"))["id"]
    await producer.send_and_wait(
        TRAINING_REQUESTS, json.dumps(training(stolen, other, keys)).encode(), key=other.encode()
    )
    await producer.send_and_wait(
        TRAINING_REQUESTS, json.dumps(training(good, model_id, keys)).encode(), key=model_id.encode()
    )

    async def view() -> dict[str, Any] | None:
        response = await client.get(f"/v1/models/{model_id}/trainings/{good}", headers=bearer(api_key))
        return response.json() if response.status_code == 200 else None

    done = await eventually(
        view, lambda v: v is not None and v["status"] in ("succeeded", "failed"), timeout_s=120, what="training"
    )
    assert done["status"] == "succeeded" and done["triggerWord"] == "ZQXWVJK", done
    model = (await client.get(f"/v1/models/{model_id}", headers=bearer(api_key))).json()
    assert model["status"] == "active"
    generated = await client.post(
        "/v1/images/generate", json={"modelId": model_id, "prompt": "a ZQXWVJK"}, headers=bearer(api_key)
    )
    assert generated.status_code == 202, generated.text

    refused = await eventually(
        lambda: context.jobs.get_as(foreign, TrainingJob),
        lambda t: t is not None and t.status == TrainingStatus.FAILED,
        what="refusal",
    )
    assert refused.tenantId == "tenant-b" and refused.error is not None and refused.error.code == "model_not_found"
    dead = await read_topic(settings, DEAD_LETTERS, lambda r: stolen.encode() in (r.value or b""), 1)
    assert "is not an image of model" in dict(dead[0].headers)["dlq-reason"].decode()
    assert await context.jobs.get(stolen) is None
