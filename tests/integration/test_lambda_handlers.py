"""The API behind Mangum, invoked with API Gateway HTTP API (payload v2) events, as Lambda would."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
from typing import Any

import pytest
from mangum import Mangum

from events.topics import JOB_LIFECYCLE
from functions.api.app import create_app
from tests.support import generation_request, read_topic

pytestmark = pytest.mark.integration


def apigw_v2_event(
    method: str, path: str, *, body: str | None = None, headers: dict[str, str] | None = None, base64_body: bool = False
) -> dict[str, Any]:
    """An API Gateway v2 (HTTP API) proxy event."""
    headers = {"host": "api.example.com", "content-type": "application/json", **(headers or {})}
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "api-id",
            "domainName": "api.example.com",
            "domainPrefix": "api",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "192.0.2.1",
                "userAgent": "test",
            },
            "requestId": "request-id",
            "routeKey": "$default",
            "stage": "$default",
            "time": "21/Nov/2026:12:00:00 +0000",
            "timeEpoch": 1795000000000,
        },
        "body": base64.b64encode(body.encode()).decode() if (body and base64_body) else body,
        "isBase64Encoded": base64_body,
    }


class LambdaContext:
    function_name = "lorafoundry-api"
    aws_request_id = "request-id"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:lorafoundry-api"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture(scope="module")
def invoke(bootstrapped):
    """Invoke the Mangum handler in a thread of its own, which keeps one loop across calls like Lambda."""
    from concurrent.futures import ThreadPoolExecutor

    executor = ThreadPoolExecutor(max_workers=1)
    app = create_app(bootstrapped)
    handler = executor.submit(lambda: Mangum(app, lifespan="off")).result()

    async def call(event: dict[str, Any]) -> dict[str, Any]:
        return await asyncio.get_running_loop().run_in_executor(executor, handler, event, LambdaContext())

    yield call
    if app.state.context is not None:  # close the clients on the loop that opened them
        executor.submit(lambda: asyncio.get_event_loop().run_until_complete(app.state.context.close())).result()
    executor.shutdown(wait=True)


async def test_generate_and_poll_through_api_gateway_events(invoke, api_key) -> None:
    body = json.dumps({"modelId": "tiny-sd", "prompt": "a lighthouse", "width": 64, "height": 64})
    response = await invoke(
        apigw_v2_event("POST", "/v1/images/generate", body=body, headers={"authorization": f"Bearer {api_key}"})
    )
    assert response["statusCode"] == 202, response
    job_id = json.loads(response["body"])["jobId"]
    assert response["headers"]["location"] == f"/v1/images/jobs/{job_id}"

    response = await invoke(
        apigw_v2_event("GET", f"/v1/images/jobs/{job_id}", headers={"authorization": f"Bearer {api_key}"})
    )
    assert response["statusCode"] == 200, response
    assert json.loads(response["body"])["status"] in ("queued", "processing", "completed")


async def test_base64_encoded_body_is_accepted(invoke, api_key) -> None:
    body = json.dumps({"modelId": "tiny-sd", "prompt": "a fox", "width": 64, "height": 64})
    response = await invoke(
        apigw_v2_event(
            "POST", "/v1/images/generate", body=body, base64_body=True, headers={"authorization": f"Bearer {api_key}"}
        )
    )
    assert response["statusCode"] == 202, response


async def test_errors_through_api_gateway_events(invoke, api_key) -> None:
    response = await invoke(apigw_v2_event("GET", "/v1/images/jobs/job_missing"))
    assert response["statusCode"] == 401
    assert json.loads(response["body"])["error"]["code"] == "unauthorized"

    response = await invoke(
        apigw_v2_event("POST", "/v1/images/generate", body="{broken", headers={"authorization": f"Bearer {api_key}"})
    )
    assert response["statusCode"] == 422
    assert json.loads(response["body"])["error"]["field"] == "body"


def test_handler_module_exposes_a_mangum_handler(monkeypatch) -> None:
    import importlib

    import functions.api.handler as module

    assert isinstance(importlib.reload(module).handler, Mangum)


def msk_event(*records: dict[str, Any]) -> dict[str, Any]:
    """Lambda's event for an MSK event source mapping: one partition's records, values base64-encoded."""
    return {
        "eventSource": "aws:kafka",
        "eventSourceArn": "arn:aws:kafka:us-east-1:123456789012:cluster/lorafoundry/abc",
        "bootstrapServers": "b-1.lorafoundry.kafka.us-east-1.amazonaws.com:9098",
        "records": {f"{JOB_LIFECYCLE}-0": list(records)},
    }


def msk_record(offset: int, value: bytes, key: bytes, headers: list[tuple[str, bytes]] = ()) -> dict[str, Any]:
    """One record of an MSK event, headers in Lambda's form (a name to its bytes as a list of ints)."""
    return {
        "topic": JOB_LIFECYCLE,
        "partition": 0,
        "offset": offset,
        "timestamp": 1795000000000,
        "timestampType": "CREATE_TIME",
        "key": base64.b64encode(key).decode(),
        "value": base64.b64encode(value).decode(),
        "headers": [{name: list(data)} for name, data in headers],
    }


async def test_a_kafka_batch_handles_its_lifecycle_events_and_dead_letters_the_rest(bootstrapped) -> None:
    from events.envelope import kafka_headers
    from events.records.jobs import GenerationJob
    from events.states import GenerationStatus
    from events.topics import DEAD_LETTERS
    from events.usecases.lifecycle import lifecycle_event
    from functions.webhooks.handler import WebhooksLambda

    marker = secrets.token_hex(6)
    job = GenerationJob(jobId=f"job-{marker}", tenantId="tenant-dlq", request=generation_request(f"job-{marker}"))
    structured = lifecycle_event(job, GenerationStatus.COMPLETED, "/test")
    # The same kind of event in binary mode (attributes as ce_* headers), as a direct producer may write it.
    binary = lifecycle_event(job, GenerationStatus.PROCESSING, "/test")
    envelope = binary.model_dump(mode="json", exclude_none=True)
    ce_headers = [(f"ce_{name}", str(value).encode()) for name, value in envelope.items() if name != "data"]
    event = msk_event(
        msk_record(7, b"garbage " + marker.encode(), f"bad-{marker}".encode()),
        msk_record(8, structured.to_json_bytes(), job.jobId.encode(), kafka_headers()),
        msk_record(9, json.dumps(envelope["data"]).encode(), job.jobId.encode(), ce_headers),
    )

    handler = WebhooksLambda(lambda: bootstrapped)
    try:
        assert await asyncio.to_thread(handler, event, LambdaContext()) == {"batchItemFailures": []}
    finally:
        await asyncio.to_thread(handler.close)

    dead = await read_topic(bootstrapped, DEAD_LETTERS, lambda r: r.key == f"bad-{marker}".encode(), 1)
    assert dead[0].value == b"garbage " + marker.encode()
    headers = dict(dead[0].headers)
    assert "not JSON" in headers["dlq-reason"].decode()
    assert headers["dlq-topic"] == JOB_LIFECYCLE.encode()
    assert (headers["dlq-partition"], headers["dlq-offset"]) == (b"0", b"7")
