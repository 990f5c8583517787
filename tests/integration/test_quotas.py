"""Quotas on the real path (moto's DynamoDB, the real app): a tenant with tiny limits meets each of them and is
answered 429 with Retry-After and the limit's name, never a 5xx; a suspended tenant gets 403."""

from __future__ import annotations

import io
import secrets

import httpx
import pytest
from PIL import Image

from events.records.jobs import GenerationJob
from events.records.tenants import TenantQuotas, TenantRecord
from events.states import GenerationStatus, JobKind, TenantStatus, TrainingStatus
from events.usecases import jobs
from functions.api.services.models import soft_delete_model
from tests.support import bearer, generation_request, training_request

pytestmark = pytest.mark.integration

GENERATE = {"modelId": "tiny-sd", "prompt": "a quiet lake", "width": 64, "height": 64, "numInferenceSteps": 2}


async def tenant_with(context, status: TenantStatus = TenantStatus.ACTIVE, **limits: float) -> tuple[str, str]:
    """A new tenant with these quota overrides, and an API key of it."""
    tenant_id = f"quota-{secrets.token_hex(4)}"
    await context.tenants.create(TenantRecord(tenantId=tenant_id, status=status, quotas=TenantQuotas(**limits)))  # type: ignore[arg-type]
    key = f"lf_test_{secrets.token_hex(16)}"
    await context.api_keys.put(key, tenant_id=tenant_id, name="quotas")
    return tenant_id, key


def png(seed: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), (seed, 90, 160)).save(out, format="PNG")
    return out.getvalue()


def assert_429(response: httpx.Response, code: str, quota: str) -> dict:
    assert response.status_code == 429, response.text
    assert int(response.headers["Retry-After"]) >= 1
    error = response.json()["error"]
    assert error["code"] == code and error["quota"] == quota and "the limit is" in error["message"]
    return error


async def test_the_third_request_within_a_second_is_rate_limited(client, context) -> None:
    _, key = await tenant_with(context, requestsPerSecond=2)
    # Quick requests, until one is refused: a window holds two, so the third or fifth at the latest (unless a
    # request took half a second) meets a full one.
    answers = []
    while len(answers) < 20 and (not answers or answers[-1].status_code != 429):
        answers.append(await client.get("/v1/models", headers=bearer(key)))
    statuses = [a.status_code for a in answers]
    assert statuses[-1] == 429 and set(statuses[:-1]) == {200} and len(statuses) >= 3, statuses
    refused = answers[-1]
    error = assert_429(refused, "rate_limited", "requestsPerSecond")
    assert refused.headers["Retry-After"] == "1" and error["limit"] == 2


async def test_a_generation_over_the_active_limit_is_refused_naming_it(client, context) -> None:
    tenant_id, key = await tenant_with(context, activeGenerations=1)
    # A queued generation written straight into the table: no command is published, so no worker takes it.
    job_id = f"job_{secrets.token_hex(8)}"
    await context.jobs.create(
        GenerationJob(jobId=job_id, tenantId=tenant_id, modelId="tiny-sd", request=generation_request(job_id))
    )
    try:
        response = await client.post("/v1/images/generate", json=GENERATE, headers=bearer(key))
        error = assert_429(response, "quota_exceeded", "activeGenerations")
        assert (error["limit"], error["current"]) == (1, 1)
        assert "LF_QUOTA_ACTIVE_GENERATIONS" in error["message"]
    finally:
        await context.jobs.advance(job_id, GenerationStatus.CANCELED)


async def test_a_training_over_the_active_limit_waits_for_the_running_ones_estimate(client, context) -> None:
    tenant_id, key = await tenant_with(context, activeTrainings=1)
    model_id = (await client.post("/v1/models", json={"name": "Busy"}, headers=bearer(key))).json()["modelId"]
    # A training held by a worker that expects two minutes (written and claimed here: no worker sees it).
    training_id = f"trn_{secrets.token_hex(8)}"
    record = jobs.training_record(tenant_id, training_request(training_id, model_id), {"estimatedSeconds": 120.0})
    await context.jobs.create(record)
    await context.jobs.claim(training_id, "quota-test", 60, kind=JobKind.TRAINING)
    try:
        response = await client.post(f"/v1/models/{model_id}/trainings", json={}, headers=bearer(key))
        assert_429(response, "quota_exceeded", "activeTrainings")
        assert 100 <= int(response.headers["Retry-After"]) <= 120
    finally:
        await context.jobs.advance(training_id, TrainingStatus.CANCELED)


async def test_training_images_and_storage_are_bounded_and_freed(client, context) -> None:
    first, second = png(1), png(2)
    tenant_id, key = await tenant_with(context, trainingImagesPerModel=1, storageBytes=len(first) + len(second) // 2)
    models = [
        (await client.post("/v1/models", json={"name": name}, headers=bearer(key))).json()["modelId"]
        for name in ("One", "Two")
    ]
    urls = [f"/v1/models/{model_id}/training-data" for model_id in models]
    stored = await client.post(urls[0], content=first, headers=bearer(key))
    assert stored.status_code == 201, stored.text
    assert_429(
        await client.post(urls[0], content=second, headers=bearer(key)),
        "training_images_quota_exceeded",
        "trainingImagesPerModel",
    )
    full = await client.post(urls[1], content=second, headers=bearer(key))
    assert assert_429(full, "storage_quota_exceeded", "storageBytes")["current"] == len(first)
    listed = await client.get(urls[1], headers=bearer(key))
    assert listed.status_code == 200 and listed.json() == []
    # Deleting an image gives its bytes back.
    deleted = await client.delete(f"{urls[0]}/{stored.json()['dataId']}", headers=bearer(key))
    assert deleted.status_code == 204, deleted.text
    assert (await client.post(urls[1], content=second, headers=bearer(key))).status_code == 201
    # Deleting a model gives its images' bytes back too: the tenant can no longer see or delete them.
    tenant = await context.tenants.get(tenant_id)
    assert tenant is not None and tenant.storageBytes == len(second)
    model = await context.models.get(models[1])
    assert model is not None
    await soft_delete_model(context, model)
    tenant = await context.tenants.get(tenant_id)
    assert tenant is not None and tenant.storageBytes == 0


async def test_a_suspended_tenant_is_forbidden_everywhere(client, context) -> None:
    _, key = await tenant_with(context, TenantStatus.SUSPENDED)
    for response in (
        await client.get("/v1/models", headers=bearer(key)),
        await client.post("/v1/images/generate", json=GENERATE, headers=bearer(key)),
        await client.get("/v1/uploads/upl_missing", headers=bearer(key)),
    ):
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "tenant_suspended"
