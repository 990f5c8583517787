"""The whole path: POST /v1/images/generate -> Kafka -> worker -> S3 -> SQS -> s3_events -> DynamoDB."""

from __future__ import annotations

import io
import json
import secrets

import pytest
from PIL import Image

from events.generation import GenerationRequested
from events.records.jobs import GenerationJob
from events.states import GenerationStatus
from events.topics import DEAD_LETTERS, GENERATION_REQUESTS, JOB_LIFECYCLE
from tests.journeys import download
from tests.support import bearer, eventually, read_topic, wait_for_job

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("worker")]


def _body(**overrides: object) -> dict:
    return {"modelId": "tiny-sd", "prompt": "a red fox in the snow", "width": 64, "height": 64, **overrides}


async def _lifecycle_events(settings, job_id: str, expected: int) -> list[dict]:
    records = await read_topic(settings, JOB_LIFECYCLE, lambda r: json.loads(r.value)["subject"] == job_id, expected)
    return [json.loads(r.value) for r in records]


async def test_generate_completes_with_downloadable_png(client, api_key, settings) -> None:
    response = await client.post("/v1/images/generate", json=_body(numOutputs=2, seed=7), headers=bearer(api_key))
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] == "queued"
    assert accepted["jobId"].startswith("job_")
    assert response.headers["location"] == f"/v1/images/jobs/{accepted['jobId']}"

    view = await wait_for_job(client, accepted["jobId"], bearer(api_key))
    assert view["status"] == "completed", view
    assert len(view["images"]) == 2
    assert view["parameters"]["seed"] == 7
    assert view["timings"]["computeMs"] > 0
    assert view["startedAt"] and view["completedAt"]
    for image in view["images"]:
        data = await download(image["url"])
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        assert Image.open(io.BytesIO(data)).size == (64, 64)

    events = await _lifecycle_events(settings, accepted["jobId"], expected=2)
    assert [e["type"] for e in events] == ["ai.lorafoundry.job.started.v1", "ai.lorafoundry.job.succeeded.v1"]
    assert events[1]["tenantid"] == "tenant-a"
    assert len(events[1]["data"]["outputs"]) == 2


async def test_same_seed_and_prompt_give_the_same_bytes(client, api_key) -> None:
    jobs = []
    for seed in (11, 11, 12):
        response = await client.post("/v1/images/generate", json=_body(seed=seed), headers=bearer(api_key))
        jobs.append(response.json()["jobId"])
    images = []
    for job_id in jobs:
        view = await wait_for_job(client, job_id, bearer(api_key))
        assert view["status"] == "completed", view
        images.append(await download(view["images"][0]["url"]))
    assert images[0] == images[1]
    assert images[0] != images[2]


async def test_jpeg_output(client, api_key) -> None:
    response = await client.post(
        "/v1/images/generate", json=_body(outputFormat="jpeg", width=96, height=72), headers=bearer(api_key)
    )
    view = await wait_for_job(client, response.json()["jobId"], bearer(api_key))
    assert view["status"] == "completed", view
    data = await download(view["images"][0]["url"])
    assert data[:3] == b"\xff\xd8\xff"
    assert Image.open(io.BytesIO(data)).size == (96, 72)


async def test_worker_failure_ends_failed_with_a_reason(client, api_key) -> None:
    # "broken" is registered, so the API accepts it; its weights do not exist, so the worker fails.
    response = await client.post("/v1/images/generate", json=_body(modelId="broken"), headers=bearer(api_key))
    assert response.status_code == 202, response.text
    view = await wait_for_job(client, response.json()["jobId"], bearer(api_key))
    assert view["status"] == "failed"
    assert view["error"]["code"] == "model_unavailable"
    assert "broken" in view["error"]["message"]
    assert view["images"] == []


async def test_duplicate_delivery_does_not_run_a_job_twice(client, api_key, context, worker) -> None:
    response = await client.post("/v1/images/generate", json=_body(seed=3), headers=bearer(api_key))
    job_id = response.json()["jobId"]
    await wait_for_job(client, job_id, bearer(api_key))
    before = await context.jobs.get_as(job_id, GenerationJob)
    assert before is not None
    handled_before = worker.handled

    # Publish the same command again, as a redelivery after a lost commit would.
    event = GenerationRequested(subject=job_id, tenantid="tenant-a", data=before.request)
    await context.publisher.publish(GENERATION_REQUESTS, event)

    async def handled() -> int:
        return worker.handled

    await eventually(handled, lambda n: n > handled_before, what="the redelivery to be handled")
    after = await context.jobs.get(job_id)
    assert after is not None
    assert after.version == before.version
    assert after.attempts == 1
    assert after.status == GenerationStatus.COMPLETED


async def test_invalid_events_go_to_the_dlq_and_later_events_still_flow(client, api_key, context, settings) -> None:
    producer = context.producer
    marker = secrets.token_hex(4)
    await producer.send_and_wait(GENERATION_REQUESTS, value=b"not json " + marker.encode(), key=b"bad")
    bad_event = {
        "specversion": "1.0",
        "id": marker,
        "source": "/test",
        "type": "ai.lorafoundry.generation.requested.v1",
        "subject": "job_x",
        "tenantid": "tenant-a",
        "data": {"jobId": "job_x", "prompt": ""},
    }
    await producer.send_and_wait(GENERATION_REQUESTS, value=json.dumps(bad_event).encode(), key=b"bad")

    found = await read_topic(settings, DEAD_LETTERS, lambda r: marker.encode() in (r.value or b""), 2)
    reasons = [dict(r.headers)["dlq-reason"].decode() for r in found]
    assert "not JSON" in reasons[0]
    assert "data.prompt" in reasons[1] or "prompt" in reasons[1]

    response = await client.post("/v1/images/generate", json=_body(), headers=bearer(api_key))
    view = await wait_for_job(client, response.json()["jobId"], bearer(api_key))
    assert view["status"] == "completed"
