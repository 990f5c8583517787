"""Quotas on the fakes: what counts as a tenant's active jobs, storage reserved before bytes are written and
given back when they go, and the API's answers (429 with Retry-After, 403 for a suspended tenant)."""

from __future__ import annotations

import hashlib
import io
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from PIL import Image

from events.records.tenants import TenantQuotas, TenantRecord
from events.states import GenerationStatus, JobKind, TenantStatus
from events.usecases import jobs, quotas
from events.usecases.errors import QuotaExceeded
from events.usecases.training_data import store_training_image
from events.usecases.trainings import train_with_images
from functions.api.app import create_app
from tests.fakes import FakeBackends
from tests.support import bearer
from tests.usecases.builders import SOURCE, TENANT, generation_data, new_model, run_training, start, trainable_model

KEY = "lf_quota_key"
GOOD = {"modelId": "tiny-sd", "prompt": "a red fox", "width": 64, "height": 64}


@dataclass(frozen=True)
class StubImage:
    """A normalized image as the adapters hand it to the use cases."""

    png: bytes
    source_bytes: int
    width: int = 64
    height: int = 64
    source_format: str = "png"

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.png).hexdigest()


def image(size: int, seed: int = 0) -> StubImage:
    return StubImage(png=bytes([seed]) * 10, source_bytes=size)


async def with_quotas(backends: FakeBackends, **limits: float) -> None:
    await backends.tenants.create(TenantRecord(tenantId=TENANT, quotas=TenantQuotas(**limits)))  # type: ignore[arg-type]


async def stored_bytes(backends: FakeBackends) -> int:
    tenant = await backends.tenants.get(TENANT)
    return tenant.storageBytes if tenant else 0


async def test_a_tenants_active_jobs_are_its_queued_and_running_ones(backends: FakeBackends) -> None:
    await with_quotas(backends, activeGenerations=2)
    for job_id in ("job_a", "job_b", "job_c"):
        await jobs.queue_generation(backends, TENANT, generation_data(job_id), source=SOURCE)
    await jobs.queue_generation(backends, "ten_other", generation_data("job_other"), source=SOURCE)
    await backends.jobs.claim("job_a", "worker-1", 60, kind=JobKind.GENERATION)  # running still counts
    await backends.jobs.advance("job_b", GenerationStatus.CANCELED)  # an ended one does not
    assert await backends.job_counts.active(TENANT, JobKind.GENERATION) == 2
    with pytest.raises(QuotaExceeded) as caught:
        await quotas.require_job_slot(backends, TENANT, JobKind.GENERATION)
    assert caught.value.details == {"quota": "activeGenerations", "limit": 2, "current": 2}
    await backends.jobs.advance("job_c", GenerationStatus.FAILED)
    await quotas.require_job_slot(backends, TENANT, JobKind.GENERATION)


async def test_a_portraits_own_generations_do_not_count_against_the_caller(backends: FakeBackends) -> None:
    await with_quotas(backends, activeGenerations=1)
    await jobs.queue_generation(
        backends, TENANT, generation_data("job_prt_0"), source=SOURCE, extra={"portraitId": "prt_1"}
    )
    await quotas.require_job_slot(backends, TENANT, JobKind.GENERATION)


async def test_a_portraits_training_counts_as_a_training(backends: FakeBackends) -> None:
    await with_quotas(backends, activeTrainings=1)
    model = await trainable_model(backends)
    training = await start(backends, model, extra={"portraitId": "prt_1"})
    with pytest.raises(QuotaExceeded, match="trainings queued or running") as queued:
        await quotas.require_job_slot(backends, TENANT, JobKind.TRAINING)
    assert queued.value.retry_after_s == quotas.TRAINING_SLOT_RETRY_S  # nothing running says when it ends
    await run_training(backends, training)
    with pytest.raises(QuotaExceeded) as running:
        await quotas.require_job_slot(backends, TENANT, JobKind.TRAINING)
    # The running training's own estimate says when the slot frees.
    assert training.estimatedSeconds is not None
    assert 1 <= running.value.retry_after_s <= max(1, math.ceil(training.estimatedSeconds))


async def test_storage_is_reserved_before_the_bytes_are_written(backends: FakeBackends) -> None:
    await with_quotas(backends, storageBytes=100)
    await new_model(backends)
    await store_training_image(backends, "mdl_1", TENANT, image(60, 1), "dat_1")
    assert await stored_bytes(backends) == 60
    with pytest.raises(QuotaExceeded) as caught:
        await store_training_image(backends, "mdl_1", TENANT, image(41, 2), "dat_2")
    assert caught.value.code == "storage_quota_exceeded" and caught.value.details["current"] == 60
    assert await stored_bytes(backends) == 60
    assert [i.dataId for i in await backends.training_data.list("mdl_1")] == ["dat_1"]
    assert len(backends.store.objects) == 1


async def test_train_with_images_over_a_limit_stores_none_of_them(backends: FakeBackends) -> None:
    await with_quotas(backends, trainingImagesPerModel=2, storageBytes=100)
    model = await new_model(backends)
    train = {"source": SOURCE, "model_parameters": {}}
    with pytest.raises(QuotaExceeded, match="too many training images"):
        await train_with_images(backends, TENANT, model, [(image(1, i), None) for i in range(3)], **train)
    with pytest.raises(QuotaExceeded, match="storage"):
        await train_with_images(backends, TENANT, model, [(image(60, 1), None), (image(60, 2), None)], **train)
    assert await backends.training_data.list("mdl_1") == [] and backends.store.objects == {}
    assert await stored_bytes(backends) == 0
    training, data_ids = await train_with_images(
        backends, TENANT, model, [(image(30, 1), None), (image(30, 2), None)], **train
    )
    assert len(data_ids) == 2 and await stored_bytes(backends) == 60
    assert await backends.job_counts.active(TENANT, JobKind.TRAINING) == 1 and training.jobId


async def test_freed_storage_never_goes_below_zero(backends: FakeBackends) -> None:
    await backends.tenants.add_storage(TENANT, 10)
    await quotas.release_storage(backends, TENANT, 25)  # bytes stored before they were counted
    assert await stored_bytes(backends) == 0


# -- the API on the fakes ------------------------------------------------------------------------------------
@pytest.fixture
async def client(backends: FakeBackends) -> AsyncIterator[httpx.AsyncClient]:
    backends.api_keys.add(KEY, TENANT)
    app = create_app(backends.settings)
    app.state.context = backends
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        yield client


def png(seed: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (seed, 100, 50)).save(out, format="PNG")
    return out.getvalue()


async def test_a_key_over_its_requests_per_second_gets_429_until_the_window_ends(
    client: httpx.AsyncClient, backends: FakeBackends
) -> None:
    await with_quotas(backends, requestsPerSecond=2)
    backends.rate_limits.now = 5000.25
    answers = [await client.get("/v1/models", headers=bearer(KEY)) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    refused = answers[2]
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.json()["error"]["quota"] == "requestsPerSecond" and refused.json()["error"]["limit"] == 2
    backends.rate_limits.now = 5001.0
    assert (await client.get("/v1/models", headers=bearer(KEY))).status_code == 200


async def test_a_suspended_tenant_is_refused_on_every_route(client: httpx.AsyncClient, backends: FakeBackends) -> None:
    await backends.tenants.create(TenantRecord(tenantId=TENANT, status=TenantStatus.SUSPENDED))
    for response in (
        await client.get("/v1/models", headers=bearer(KEY)),
        await client.post("/v1/images/generate", json=GOOD, headers=bearer(KEY)),
    ):
        assert response.status_code == 403 and response.json()["error"]["code"] == "tenant_suspended"
    assert backends.jobs.documents == {}


async def test_a_generation_over_the_active_limit_is_429_and_queues_nothing(
    client: httpx.AsyncClient, backends: FakeBackends
) -> None:
    await with_quotas(backends, activeGenerations=1)
    first = await client.post("/v1/images/generate", json=GOOD, headers=bearer(KEY))
    assert first.status_code == 202, first.text
    second = await client.post("/v1/images/generate", json=GOOD, headers=bearer(KEY))
    assert second.status_code == 429, second.text
    assert int(second.headers["Retry-After"]) >= 1
    error = second.json()["error"]
    assert error["code"] == "quota_exceeded" and "the limit is 1" in error["message"]
    assert (error["quota"], error["limit"], error["current"]) == ("activeGenerations", 1, 1)
    assert len(backends.jobs.documents) == 1


async def test_training_images_count_against_the_model_and_the_tenants_storage(
    client: httpx.AsyncClient, backends: FakeBackends
) -> None:
    await with_quotas(backends, trainingImagesPerModel=1)
    model_id = (await client.post("/v1/models", json={"name": "Fox"}, headers=bearer(KEY))).json()["modelId"]
    url = f"/v1/models/{model_id}/training-data"
    first = await client.post(url, content=png(1), headers=bearer(KEY))
    assert first.status_code == 201, first.text
    assert await stored_bytes(backends) == len(png(1))
    second = await client.post(url, content=png(2), headers=bearer(KEY))
    assert second.status_code == 429 and second.json()["error"]["code"] == "training_images_quota_exceeded"
    presigned = await client.post(f"{url}/presigned", json={}, headers=bearer(KEY))
    assert presigned.status_code == 429
    deleted = await client.delete(f"{url}/{first.json()['dataId']}", headers=bearer(KEY))
    assert deleted.status_code == 204 and await stored_bytes(backends) == 0
