"""The API's behaviour on fakes: the real FastAPI app, its service context replaced by `FakeBackends`, so a
request runs through routes, dialects and use cases with no server behind them."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import httpx
import pytest
from PIL import Image

from events.records.jobs import GenerationJob, PortraitJob, TrainingJob
from events.records.uploads import UploadPurpose, UploadRecord
from events.states import GenerationStatus, JobKind, ModelStatus, PortraitStatus, TrainingStatus, UploadStatus
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


async def _uploaded_photo(backends: FakeBackends, upload_id: str) -> str:
    """A ready image upload of the tenant (what `POST /v1/uploads` leaves), its bytes in the store."""
    png = io.BytesIO()
    Image.new("RGB", (96, 128), (200, 120, 80)).save(png, format="PNG")
    key = f"uploads/{upload_id}.png"
    await backends.store.put_bytes(key, png.getvalue(), "image/png")
    record = UploadRecord(
        uploadId=upload_id, tenantId="ten_1", purpose=UploadPurpose.IMAGE, status=UploadStatus.READY, key=key
    )
    await backends.uploads.create(record, 3600)
    return upload_id


async def test_a_portraits_record_is_written_before_its_training_is_queued(
    client: httpx.AsyncClient, backends: FakeBackends
) -> None:
    portraits_when_queued: list[list[str]] = []
    publish = backends.publisher.publish

    async def watching(topic: str, event: object, key: str | None = None) -> None:
        if topic == TRAINING_REQUESTS:
            documents = backends.jobs.documents.values()
            portraits_when_queued.append([d["jobId"] for d in documents if d["kind"] == JobKind.PORTRAIT.value])
        await publish(topic, event, key)  # type: ignore[arg-type]

    backends.publisher.publish = watching  # type: ignore[method-assign]
    photo = await _uploaded_photo(backends, "upl_1")
    body = {"gender": "woman", "styles": ["business", "studio"], "imageKeys": [photo]}
    response = await client.post("/v1/portraits", json=body, headers=bearer(KEY))
    assert response.status_code == 202, response.text
    portrait = await backends.jobs.get_as(response.json()["id"], PortraitJob)
    assert portrait is not None and portrait.status is PortraitStatus.TRAINING
    assert portraits_when_queued == [[portrait.jobId]]
    training = await backends.jobs.get_as(portrait.trainingId, TrainingJob)
    assert training is not None and training.portraitId == portrait.jobId
    assert [style.id for style in portrait.styles] == ["business", "studio"]


async def test_a_portrait_whose_training_cannot_start_leaves_nothing_visible(
    client: httpx.AsyncClient, backends: FakeBackends
) -> None:
    backends.publisher.fail()
    body = {"gender": "man", "styles": ["business"], "imageKeys": [await _uploaded_photo(backends, "upl_2")]}
    response = await client.post("/v1/portraits", json=body, headers=bearer(KEY))
    assert response.status_code == 503 and response.json()["error"]["code"] == "queue_unavailable"
    [portrait] = [d for d in backends.jobs.documents.values() if d["kind"] == JobKind.PORTRAIT.value]
    assert portrait["status"] == PortraitStatus.FAILED.value and portrait["deletedAt"]
    assert (await client.get(f"/v1/portraits/{portrait['jobId']}", headers=bearer(KEY))).status_code == 404
    [model] = backends.models.documents.values()
    assert model["deletedAt"]
