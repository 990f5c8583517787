"""Bad input gets a 4xx with a JSON error naming the problem, never a 5xx, and leaves nothing behind."""

from __future__ import annotations

import json

import pytest

from tests.support import bearer

pytestmark = pytest.mark.integration

GOOD = {"modelId": "tiny-sd", "prompt": "a red fox", "width": 64, "height": 64}


def _assert_error(response, status: int, code: str, field: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    if field is not None:
        assert error["field"] == field, error
    return error


@pytest.mark.parametrize(
    "headers, message",
    [
        ({}, "missing"),
        # Basic is accepted (seed 003), but only as an active key and its signing secret.
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "invalid API key or signing secret"),
        ({"Authorization": "Token lf_abc"}, "Bearer"),
        ({"Authorization": "Bearer "}, "Bearer"),
        ({"Authorization": "Bearer lf_not_a_real_key"}, "invalid API key"),
        ({"Authorization": "Bearer " + "x" * 5000}, "invalid API key"),
    ],
)
async def test_missing_or_wrong_api_key_is_401(client, headers, message) -> None:
    for method, path, kwargs in (
        ("POST", "/v1/images/generate", {"json": GOOD}),
        ("GET", "/v1/images/jobs/job_0123", {}),
    ):
        response = await client.request(method, path, headers=headers, **kwargs)
        error = _assert_error(response, 401, "unauthorized")
        assert message in error["message"]
        assert response.headers["www-authenticate"] == 'Bearer, Basic realm="lorafoundry"'


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"numOutputs": 5}, "numOutputs"),
        ({"numOutputs": 0}, "numOutputs"),
        ({"numOutputs": "two"}, "numOutputs"),
        ({"width": 100}, "width"),  # not a multiple of 8
        ({"width": 4096}, "width"),
        ({"height": 56}, "height"),
        ({"width": "wide"}, "width"),
        ({"width": 2048, "height": 64}, "width"),  # over tiny-sd's maximum side (1536)
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x" * 2001}, "prompt"),
        ({"prompt": 42}, "prompt"),
        ({"guidanceScale": 21}, "guidanceScale"),
        ({"guidanceScale": -1}, "guidanceScale"),
        ({"numInferenceSteps": 0}, "numInferenceSteps"),
        ({"numInferenceSteps": 51}, "numInferenceSteps"),
        ({"seed": -1}, "seed"),
        ({"outputFormat": "gif"}, "outputFormat"),
        ({"unexpected": True}, "unexpected"),
        ({"modelId": ""}, "modelId"),
    ],
)
async def test_invalid_fields_are_422_naming_the_field(client, api_key, overrides, field) -> None:
    response = await client.post("/v1/images/generate", json={**GOOD, **overrides}, headers=bearer(api_key))
    _assert_error(response, 422, "validation_error", field)


async def test_missing_required_fields_are_422(client, api_key) -> None:
    response = await client.post("/v1/images/generate", json={"prompt": "p"}, headers=bearer(api_key))
    _assert_error(response, 422, "validation_error", "modelId")
    response = await client.post("/v1/images/generate", json={"modelId": "tiny-sd"}, headers=bearer(api_key))
    _assert_error(response, 422, "validation_error", "prompt")


@pytest.mark.parametrize(
    "content, content_type",
    [
        (b'{"modelId": "tiny-sd", "prompt": ', "application/json"),
        (b"not json at all", "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (b"null", "application/json"),
        (b"\xff\xfe\x00garbage", "application/json"),
        (b"", "application/json"),
    ],
)
async def test_malformed_bodies_are_422(client, api_key, content, content_type) -> None:
    response = await client.post(
        "/v1/images/generate", content=content, headers={**bearer(api_key), "Content-Type": content_type}
    )
    _assert_error(response, 422, "validation_error")


async def test_oversized_body_is_413(client, api_key, settings) -> None:
    huge = b'{"modelId": "tiny-sd", "prompt": "' + b"x" * (settings.max_request_bytes + 1) + b'"}'
    response = await client.post(
        "/v1/images/generate", content=huge, headers={**bearer(api_key), "Content-Type": "application/json"}
    )
    _assert_error(response, 413, "payload_too_large")


async def test_oversized_chunked_body_is_413(client, api_key, settings) -> None:
    async def chunks():
        yield b'{"modelId": "tiny-sd", "prompt": "'
        for _ in range(settings.max_request_bytes // 65536 + 2):
            yield b"x" * 65536
        yield b'"}'

    response = await client.post(
        "/v1/images/generate", content=chunks(), headers={**bearer(api_key), "Content-Type": "application/json"}
    )
    _assert_error(response, 413, "payload_too_large")


async def test_unknown_model_is_404_and_writes_no_job(client, api_key, context, settings) -> None:
    before = await context.clients.dynamodb.scan(TableName=settings.jobs_table, Select="COUNT")
    response = await client.post("/v1/images/generate", json={**GOOD, "modelId": "mod_zyx987"}, headers=bearer(api_key))
    _assert_error(response, 404, "model_not_found", "modelId")
    after = await context.clients.dynamodb.scan(TableName=settings.jobs_table, Select="COUNT")
    assert after["Count"] == before["Count"]


async def test_unknown_job_is_404(client, api_key) -> None:
    response = await client.get("/v1/images/jobs/job_doesnotexist", headers=bearer(api_key))
    _assert_error(response, 404, "job_not_found", "jobId")


@pytest.mark.parametrize("job_id", ["job..%2F..", "a" * 65, "job%20id"])
async def test_malformed_job_ids_are_4xx(client, api_key, job_id) -> None:
    response = await client.get(f"/v1/images/jobs/{job_id}", headers=bearer(api_key))
    assert 400 <= response.status_code < 500, response.text
    assert "error" in response.json()


async def test_another_tenants_job_is_404(client, api_key, other_api_key) -> None:
    response = await client.post("/v1/images/generate", json=GOOD, headers=bearer(api_key))
    assert response.status_code == 202
    job_id = response.json()["jobId"]
    response = await client.get(f"/v1/images/jobs/{job_id}", headers=bearer(other_api_key))
    _assert_error(response, 404, "job_not_found")
    # The owner still sees it.
    assert (await client.get(f"/v1/images/jobs/{job_id}", headers=bearer(api_key))).status_code == 200


async def test_unknown_route_and_wrong_method_use_the_error_shape(client, api_key) -> None:
    _assert_error(await client.get("/v1/nothing-here", headers=bearer(api_key)), 404, "not_found")
    _assert_error(await client.delete("/v1/images/generate", headers=bearer(api_key)), 405, "method_not_allowed")


async def test_openapi_documents_the_routes(client) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert "/v1/images/generate" in spec["paths"]
    assert "/v1/images/jobs/{jobId}" in spec["paths"]
    assert (await client.get("/docs")).status_code == 200


async def test_a_malformed_traceparent_is_dropped_and_a_valid_one_carried(client, api_key, settings) -> None:
    from events.envelope import is_valid_traceparent
    from events.topics import GENERATION_REQUESTS
    from tests.support import read_topic

    valid = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    jobs: dict[str, str] = {}
    for name, header in (("valid", valid), ("malformed", "not-a-trace-context")):
        response = await client.post(
            "/v1/images/generate", json=GOOD, headers={**bearer(api_key), "traceparent": header}
        )
        assert response.status_code == 202, response.text
        jobs[name] = response.json()["jobId"]

    wanted = {job_id.encode() for job_id in jobs.values()}
    found = await read_topic(settings, GENERATION_REQUESTS, lambda r: r.key in wanted, 2)
    traceparents = {r.key.decode(): json.loads(r.value).get("traceparent") for r in found}
    # The command names a span of the request's trace (the header itself when no tracer is configured in this
    # process, else a span under it); a malformed header is dropped: no trace, or a new one of the request's own.
    carried, fresh = traceparents[jobs["valid"]], traceparents[jobs["malformed"]]
    assert is_valid_traceparent(carried) and carried.split("-")[1] == valid.split("-")[1]
    assert fresh is None or (is_valid_traceparent(fresh) and fresh.split("-")[1] != valid.split("-")[1])
