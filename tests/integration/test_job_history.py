"""`GET /v1/jobs` against the real jobs table: a tenant's mixed jobs newest first, the kind and status filters,
pagination that walks everything once, cursors that are refused, and tenants that see only their own.

The jobs are written straight into the table (no commands are published), each tenant fresh, so nothing the
session's workers do can move them while the test reads."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest

from events.records.jobs import GenerationJob, PortraitJob, PortraitStyle, TrainingJob
from events.states import GenerationStatus, PortraitStatus, TrainingStatus
from infra.repositories.jobs import encode_cursor
from tests.support import bearer, generation_request, training_request

pytestmark = pytest.mark.integration

START = datetime(2026, 1, 1, tzinfo=UTC)


async def _tenant_key(context, tenant: str) -> str:
    key = f"lf_test_{secrets.token_hex(16)}"
    await context.api_keys.put(key, tenant_id=tenant, name="history tests")
    return key


def _at(minutes: int) -> str:
    return (START + timedelta(minutes=minutes)).isoformat()


async def _mixed_jobs(context, tenant: str) -> list[str]:
    """Six live jobs and one deleted one of `tenant`; returns the live ids, newest first."""
    tag = secrets.token_hex(3)

    def generation(n: int, status: GenerationStatus, **extra: object) -> GenerationJob:
        job_id = f"job_{tag}_{n}"
        request = generation_request(job_id)
        return GenerationJob(
            jobId=job_id,
            tenantId=tenant,
            modelId="tiny-sd",
            request=request,
            status=status,
            **extra,  # type: ignore[arg-type]
        )

    training_id = f"trn_{tag}"
    jobs = [
        generation(1, GenerationStatus.COMPLETED, createdAt=_at(1), completedAt=_at(2)),
        generation(2, GenerationStatus.QUEUED, createdAt=_at(2), scaleConfigLabels=["1"]),
        TrainingJob(
            jobId=training_id,
            tenantId=tenant,
            modelId=f"mod_{tag}",
            triggerWord="W",
            request=training_request(training_id, f"mod_{tag}"),
            status=TrainingStatus.RUNNING,
            createdAt=_at(3),
        ),
        generation(4, GenerationStatus.FAILED, createdAt=_at(4), deletedAt=_at(5)),  # hidden
        PortraitJob(
            jobId=f"prt_{tag}",
            tenantId=tenant,
            trainingId=training_id,
            gender="female",
            styles=[PortraitStyle(id="s", name="S", prompt="p", jobId=f"job_{tag}_9")],
            status=PortraitStatus.TRAINING,
            createdAt=_at(5),
        ),
        generation(6, GenerationStatus.QUEUED, createdAt=_at(6)),
        generation(7, GenerationStatus.CANCELED, createdAt=_at(7), scaleConfigLabels=["a", "b"]),
    ]
    for job in jobs:
        await context.jobs.create(job)
    return [job.jobId for job in reversed(jobs) if not job.deletedAt]


async def test_history_lists_a_tenants_jobs_newest_first_filtered_and_paginated(client, context) -> None:
    tenant = f"hist-{secrets.token_hex(3)}"
    key = await _tenant_key(context, tenant)
    ids = await _mixed_jobs(context, tenant)

    response = await client.get("/v1/jobs", headers=bearer(key))
    assert response.status_code == 200, response.text
    page = response.json()
    assert [item["id"] for item in page["data"]] == ids
    assert "nextCursor" not in page
    by_id = {item["id"]: item for item in page["data"]}
    tag = ids[0].split("_")[1]
    assert by_id[f"job_{tag}_7"]["kind"] == "prediction" and by_id[f"job_{tag}_7"]["status"] == "canceled"
    assert by_id[f"job_{tag}_7"]["url"] == f"/v1/predictions/job_{tag}_7"
    assert (
        by_id[f"trn_{tag}"] | {"kind": "training", "status": "running", "modelId": f"mod_{tag}"} == by_id[f"trn_{tag}"]
    )
    assert by_id[f"trn_{tag}"]["url"] == f"/v1/models/mod_{tag}/trainings/trn_{tag}"
    assert by_id[f"job_{tag}_1"]["completedAt"] and by_id[f"job_{tag}_1"]["url"] == f"/v1/images/jobs/job_{tag}_1"

    async def ids_of(**params: object) -> list[str]:
        response = await client.get("/v1/jobs", params=params, headers=bearer(key))
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["data"]]

    assert await ids_of(kind="generation") == [f"job_{tag}_6", f"job_{tag}_1"]
    assert await ids_of(kind="prediction") == [f"job_{tag}_7", f"job_{tag}_2"]
    assert await ids_of(kind="portrait") == [f"prt_{tag}"]
    assert await ids_of(status="queued") == [f"job_{tag}_6", f"job_{tag}_2"]
    assert await ids_of(kind="training", status="running") == [f"trn_{tag}"]
    assert await ids_of(kind="generation", status="failed") == []  # the failed one is deleted

    # limit=2 walks everything once, newest first; the last page says there is no more.
    walked: list[str] = []
    cursor = None
    pages = 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/v1/jobs", params=params, headers=bearer(key))
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["data"]) <= 2
        walked += [item["id"] for item in body["data"]]
        pages += 1
        cursor = body.get("nextCursor")
        if cursor is None:
            break
    assert walked == ids and pages == 3
    # A filtered walk (DynamoDB's Limit counts items before the filter) still finds every match.
    first = (await client.get("/v1/jobs", params={"kind": "generation", "limit": 1}, headers=bearer(key))).json()
    second = await ids_of(kind="generation", limit=1, cursor=first["nextCursor"])
    assert [item["id"] for item in first["data"]] + second == [f"job_{tag}_6", f"job_{tag}_1"]


async def test_bad_cursors_and_filters_are_refused_and_tenants_see_only_their_own(client, context) -> None:
    tenant, other = f"hist-{secrets.token_hex(3)}", f"hist-{secrets.token_hex(3)}"
    key, other_key = await _tenant_key(context, tenant), await _tenant_key(context, other)
    ids = await _mixed_jobs(context, tenant)

    other_page = await client.get("/v1/jobs", headers=bearer(other_key))
    assert other_page.status_code == 200 and other_page.json()["data"] == []
    mine = await client.get("/v1/jobs", params={"limit": 1}, headers=bearer(key))
    cursor = mine.json()["nextCursor"]
    # My cursor in another tenant's hands reads nothing of mine.
    foreign = await client.get("/v1/jobs", params={"cursor": cursor}, headers=bearer(other_key))
    assert foreign.status_code == 400 and foreign.json()["error"]["code"] == "invalid_cursor", foreign.text
    forged = encode_cursor({"jobId": ids[0], "tenantId": other, "createdAt": "not a time"})
    for bad in ("garbage!", forged, "eyJqb2JJZCI6MX0"):
        response = await client.get("/v1/jobs", params={"cursor": bad}, headers=bearer(other_key))
        assert response.status_code == 400, response.text
        assert response.json()["error"]["field"] == "cursor"
    for params in ({"kind": "video"}, {"status": "done"}, {"kind": "training", "status": "completed"}, {"limit": 0}):
        response = await client.get("/v1/jobs", params=params, headers=bearer(key))
        assert response.status_code == 422, (params, response.text)
    refused = await client.get("/v1/jobs", params={"kind": "training", "status": "completed"}, headers=bearer(key))
    assert "succeeded" in refused.json()["error"]["choices"]
    # Another tenant's job ids are nobody's to it.
    prediction, generation = ids[0], ids[1]
    assert (await client.post(f"/v1/predictions/{prediction}/cancel", headers=bearer(other_key))).status_code == 404
    assert (await client.post(f"/v1/images/jobs/{generation}/cancel", headers=bearer(other_key))).status_code == 404
    assert (await client.get(f"/v1/images/jobs/{generation}", headers=bearer(other_key))).status_code == 404
