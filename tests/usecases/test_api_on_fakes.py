"""The API's behaviour on fakes: the real FastAPI app, its service context replaced by `FakeBackends`, so a
request runs through routes, dialects and use cases with no server behind them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from events.records.jobs import GenerationJob, TrainingJob
from events.states import GenerationStatus, JobKind, ModelStatus, TrainingStatus
from events.topics import GENERATION_REQUESTS, JOB_LIFECYCLE, TRAINING_REQUESTS
from functions.api.app import create_app
from tests.fakes import FakeBackends
from tests.support import bearer
from tests.usecases.builders import add_images

KEY = "lf_test_key"
OTHER_KEY = "lf_other_key"
GOOD = {"modelId": "tiny-sd", "prompt": "a red fox", "width": 64, "height": 64}


@pytest.fixture
async def client(backends: FakeBackends) -> AsyncIterator[httpx.AsyncClient]:
    backends.api_keys.add(KEY, "ten_1")
    backends.api_keys.add(OTHER_KEY, "ten_2")
    app = create_app(backends.settings)
    app.state.context = backends  # what `open_context` hands every route and the idempotency middleware
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield client


async def test_a_generation_is_queued_and_read_back(client: httpx.AsyncClient, backends: FakeBackends) -> None:
    response = await client.post("/v1/images/generate", json=GOOD, headers=bearer(KEY))
    assert response.status_code == 202, response.text
    job_id = response.json()["jobId"]
    assert response.headers["Location"] == f"/v1/images/jobs/{job_id}"
    [sent] = backends.publisher.on(GENERATION_REQUESTS)
    assert sent.key == job_id and sent.event.data.prompt == "a red fox" and sent.event.tenantid == "ten_1"
    view = await client.get(f"/v1/images/jobs/{job_id}", headers=bearer(KEY))
    assert view.status_code == 200 and view.json()["status"] == "queued"
    # Another tenant's job is no job at all.
    assert (await client.get(f"/v1/images/jobs/{job_id}", headers=bearer(OTHER_KEY))).status_code == 404


async def test_a_completed_job_shows_its_images(client: httpx.AsyncClient, backends: FakeBackends) -> None:
    job_id = (await client.post("/v1/images/generate", json=GOOD, headers=bearer(KEY))).json()["jobId"]
    await backends.jobs.claim(job_id, "worker-1", 60, kind=JobKind.GENERATION)
    await backends.jobs.advance(job_id, GenerationStatus.COMPLETED, {"outputs": [f"jobs/{job_id}/0.png"]})
    view = (await client.get(f"/v1/images/jobs/{job_id}", headers=bearer(KEY))).json()
    assert view["status"] == "completed"
    assert [image["url"] for image in view["images"]] == [
        await backends.store.presign_get(f"jobs/{job_id}/0.png", backends.settings.presign_expiry_seconds)
    ]


async def test_a_broker_down_is_a_503_to_retry_and_a_failed_job(
    client: httpx.AsyncClient, backends: FakeBackends
) -> None:
    backends.publisher.fail()
    response = await client.post("/v1/images/generate", json=GOOD, headers=bearer(KEY))
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5" and response.json()["error"]["code"] == "queue_unavailable"
    [job] = [await backends.jobs.get(job_id) for job_id in backends.jobs.documents]
    assert isinstance(job, GenerationJob) and job.status is GenerationStatus.FAILED


async def test_without_a_valid_key_nothing_happens(client: httpx.AsyncClient, backends: FakeBackends) -> None:
    for headers in ({}, bearer("lf_unknown")):
        response = await client.post("/v1/images/generate", json=GOOD, headers=headers)
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized"
    assert backends.jobs.documents == {} and backends.publisher.attempts == 0


async def test_a_model_without_images_cannot_train(client: httpx.AsyncClient, backends: FakeBackends) -> None:
    created = await client.post("/v1/models", json={"name": "Fox"}, headers=bearer(KEY))
    assert created.status_code == 201, created.text
    model_id = created.json()["modelId"]
    response = await client.post(f"/v1/models/{model_id}/trainings", json={}, headers=bearer(KEY))
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "no_training_data"
    assert backends.jobs.documents == {}


async def test_a_training_started_twice_conflicts_and_a_queued_one_cancels(
    client: httpx.AsyncClient, backends: FakeBackends
) -> None:
    model_id = (await client.post("/v1/models", json={"name": "Fox"}, headers=bearer(KEY))).json()["modelId"]
    await add_images(backends, model_id, 2)
    started = await client.post(f"/v1/models/{model_id}/trainings", json={}, headers=bearer(KEY))
    assert started.status_code == 202, started.text
    training_id = started.json()["trainingId"]
    [sent] = backends.publisher.on(TRAINING_REQUESTS)
    assert (sent.key, sent.event.subject) == (model_id, training_id)
    again = await client.post(f"/v1/models/{model_id}/trainings", json={}, headers=bearer(KEY))
    assert again.status_code == 409 and again.json()["error"]["code"] == "model_training"
    canceled = await client.post(f"/v1/models/{model_id}/trainings/{training_id}/cancel", headers=bearer(KEY))
    assert canceled.status_code == 202, canceled.text
    training = await backends.jobs.get_as(training_id, TrainingJob)
    model = await backends.models.get(model_id)
    assert training is not None and training.status is TrainingStatus.CANCELED
    assert model is not None and model.status is ModelStatus.TRAINING_CANCELED
    assert len(backends.publisher.on(JOB_LIFECYCLE)) == 1
    late = await client.post(f"/v1/models/{model_id}/trainings/{training_id}/cancel", headers=bearer(KEY))
    assert late.status_code == 409 and late.json()["error"]["code"] == "training_finished"
