"""`/metrics` on the API (operator's token; Prometheus text that prometheus_client's own parser reads) and on a
worker's port: request counts by route template and job counters that move when a generation runs through the
session's worker (it runs in this process, so its counters are in the same registry)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from functions.api.app import create_app
from infra.metrics import JOBS_FINISHED
from infra.metrics_server import start_metrics_server
from tests.support import bearer, wait_for_job

pytestmark = pytest.mark.integration

ADMIN_TOKEN = f"lfadm_test_{secrets.token_hex(12)}"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
async def operator_client(bootstrapped) -> AsyncIterator[httpx.AsyncClient]:
    """The API with an operator token configured (the session's app has none)."""
    app = create_app(bootstrapped.model_copy(update={"admin_token": SecretStr(ADMIN_TOKEN)}))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
            yield client
    finally:
        if app.state.context is not None:
            await app.state.context.close()


def parse(text: str) -> Samples:
    """Every sample of a scrape, by name and labels (the parser refuses malformed exposition text)."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics", headers=bearer(ADMIN_TOKEN))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE_LATEST
    return parse(response.text)


async def test_metrics_need_the_operator_token(operator_client, api_key) -> None:
    assert (await operator_client.get("/metrics")).status_code == 401
    assert (await operator_client.get("/metrics", headers=bearer(api_key))).status_code == 401  # a tenant's key
    assert "/metrics" not in (await operator_client.get("/openapi.json")).json()["paths"]


async def test_counters_move_when_a_generation_runs(operator_client, client, api_key, worker) -> None:
    before = await scrape(operator_client)
    body = {"modelId": "tiny-sd", "prompt": "a metered fox", "width": 64, "height": 64, "numInferenceSteps": 2}
    response = await client.post("/v1/images/generate", json=body, headers=bearer(api_key))
    assert response.status_code == 202, response.text
    job_id = response.json()["jobId"]
    view = await wait_for_job(client, job_id, bearer(api_key))
    assert view["status"] == "completed", view
    after = await scrape(operator_client)

    route = {"route": "/v1/images/generate", "method": "POST"}
    requests = "lorafoundry_http_requests_total"
    assert value(after, requests, **route, status="202") == value(before, requests, **route, status="202") + 1
    polls = {"route": "/v1/images/jobs/{jobId}", "method": "GET", "status": "200"}
    assert value(after, requests, **polls) > value(before, requests, **polls)  # by template, not by job id
    assert not any(job_id in dict(labels).get("route", "") for _, labels in after)
    latency = "lorafoundry_http_request_duration_seconds_count"
    assert value(after, latency, **route) == value(before, latency, **route) + 1

    finished = "lorafoundry_jobs_finished_total"
    done = {"kind": "generation", "status": "completed"}
    assert value(after, finished, **done) == value(before, finished, **done) + 1
    total = "lorafoundry_job_duration_seconds_count"
    assert value(after, total, kind="generation", stage="total") > value(
        before, total, kind="generation", stage="total"
    )
    submitted = "lorafoundry_jobs_submitted_total"
    assert value(after, submitted, kind="generation") == value(before, submitted, kind="generation") + 1, (
        "JOBS_SUBMITTED is recorded where the API queues a job (functions/api/services)"
    )
    # Queued and running counts from the sparse indexes, as gauges.
    assert ("lorafoundry_jobs", frozenset({("kind", "generation"), ("status", "queued")})) in after
    assert ("lorafoundry_jobs", frozenset({("kind", "training"), ("status", "running")})) in after


async def test_a_worker_metrics_port_serves_the_same_registry() -> None:
    server = start_metrics_server(0, host="127.0.0.1")
    try:
        labels = {"kind": "generation", "status": f"probe-{secrets.token_hex(2)}"}
        JOBS_FINISHED.labels(**labels).inc()
        async with httpx.AsyncClient() as client:
            response = await client.get(f"http://127.0.0.1:{server.port}/metrics")
        assert response.status_code == 200
        assert value(parse(response.text), "lorafoundry_jobs_finished_total", **labels) == 1
        assert server.url.endswith(f":{server.port}/metrics")
    finally:
        server.stop()


async def test_trainings_are_counted_by_the_trainer(operator_client, trained_pair) -> None:
    # The session's two trainings (a shared fixture, trained by the session's trainer in this process).
    samples = await scrape(operator_client)
    assert value(samples, "lorafoundry_jobs_finished_total", kind="training", status="succeeded") >= len(trained_pair)
    for stage in ("inputs", "load", "compute", "upload", "total"):
        count = value(samples, "lorafoundry_job_duration_seconds_count", kind="training", stage=stage)
        assert count >= len(trained_pair), stage
