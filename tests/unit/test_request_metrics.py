"""The API's request metrics are labelled by route template, never by raw path (ids would make the label values
unbounded), and count what the inner layers answer themselves too."""

from __future__ import annotations

import secrets

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from starlette.responses import PlainTextResponse

from functions.api.request_metrics import RequestMetrics
from functions.api.route_templates import UNMATCHED


class AnswersOversized:
    """An inner layer that answers some requests itself, as the body limit does: they never reach the router."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"].endswith("/oversized"):
            await PlainTextResponse("too large", status_code=413)(scope, receive, send)
            return
        await self.app(scope, receive, send)


@pytest.fixture
def prefix() -> str:
    # Fresh route paths per test: the counters are the process's own and only move.
    return f"/t{secrets.token_hex(3)}"


def make_app(prefix: str) -> FastAPI:
    app = FastAPI()

    @app.get(prefix + "/jobs/{jobId}")
    async def get_job(jobId: str) -> dict[str, str]:
        return {"jobId": jobId}

    @app.post(prefix + "/jobs/{jobId}/oversized")
    async def upload(jobId: str) -> dict[str, str]:
        return {}

    @app.get(prefix + "/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    app.add_middleware(AnswersOversized)
    app.add_middleware(RequestMetrics)
    return app


def requests(route: str, method: str, status: str) -> float:
    value = REGISTRY.get_sample_value(
        "lorafoundry_http_requests_total", {"route": route, "method": method, "status": status}
    )
    return value or 0.0


def latency_count(route: str, method: str) -> float:
    value = REGISTRY.get_sample_value(
        "lorafoundry_http_request_duration_seconds_count", {"route": route, "method": method}
    )
    return value or 0.0


async def test_requests_are_labelled_by_route_template_not_path(prefix: str) -> None:
    transport = httpx.ASGITransport(app=make_app(prefix), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for job in ("job_1", "job_2", "job_3"):
            assert (await client.get(f"{prefix}/jobs/{job}")).status_code == 200
        assert (await client.delete(f"{prefix}/jobs/job_1")).status_code == 405
        assert (await client.post(f"{prefix}/jobs/job_1/oversized")).status_code == 413
        assert (await client.get(f"{prefix}/nothing/here")).status_code == 404
        assert (await client.get(f"{prefix}/boom")).status_code == 500

    template = prefix + "/jobs/{jobId}"
    assert requests(template, "GET", "200") == 3
    assert latency_count(template, "GET") == 3
    assert requests(template, "DELETE", "405") == 1  # the method is wrong, the route is still named
    # Answered before the router: matched here from the app's routes.
    assert requests(template + "/oversized", "POST", "413") == 1
    assert requests(prefix + "/boom", "GET", "500") == 1
    labelled = {s.labels["route"] for m in REGISTRY.collect() for s in m.samples if "route" in s.labels}
    assert not any("job_1" in route for route in labelled)
    assert UNMATCHED in labelled


async def test_an_unusual_method_is_one_label(prefix: str) -> None:
    before = requests(UNMATCHED, "other", "404") + requests(prefix + "/jobs/{jobId}", "other", "405")
    transport = httpx.ASGITransport(app=make_app(prefix))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await client.request(f"X{secrets.token_hex(2).upper()}", f"{prefix}/jobs/j")
    after = requests(UNMATCHED, "other", "404") + requests(prefix + "/jobs/{jobId}", "other", "405")
    assert after == before + 1
