"""When Kafka cannot be reached, the API answers 503 with a clear error, not a 500."""

from __future__ import annotations

import httpx
import pytest

from functions.api.app import create_app
from infra.local.processes import free_port
from tests.conftest import Broker
from tests.support import bearer

pytestmark = pytest.mark.integration


async def test_unreachable_kafka_is_503(bootstrapped, api_key) -> None:
    nothing_listens = f"127.0.0.1:{free_port()}"
    app = create_app(bootstrapped.model_copy(update={"kafka_bootstrap_servers": nothing_listens}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        response = await client.post(
            "/v1/images/generate", json={"modelId": "tiny-sd", "prompt": "p"}, headers=bearer(api_key)
        )
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "service_unavailable"
    assert response.headers["retry-after"] == "5"


async def test_broker_lost_after_start_fails_the_job_and_answers_503(bootstrapped, context, log_dir) -> None:
    import secrets

    from infra.bootstrap import ensure_topics
    from infra.resources import resources_for
    from infra.settings import Settings

    broker = Broker(log_dir)
    broker.start()
    settings: Settings = bootstrapped.model_copy(update={"kafka_bootstrap_servers": broker.bootstrap_servers})
    await ensure_topics(settings, resources_for(settings))
    tenant = f"tenant-{secrets.token_hex(4)}"
    key = f"lf_test_{secrets.token_hex(16)}"
    await context.api_keys.put(key, tenant_id=tenant, name="tests")
    app = create_app(settings)
    body = {"modelId": "tiny-sd", "prompt": "p"}
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
            assert (await client.post("/v1/images/generate", json=body, headers=bearer(key))).status_code == 202
            broker.stop()
            response = await client.post("/v1/images/generate", json=body, headers=bearer(key))
    finally:
        broker.stop()
        if app.state.context is not None:
            await app.state.context.close()
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "queue_unavailable"
    jobs = await context.clients.dynamodb.query(
        TableName=settings.jobs_table,
        IndexName="byTenant",
        KeyConditionExpression="tenantId = :t",
        ExpressionAttributeValues={":t": {"S": tenant}},
    )
    statuses = sorted(item["status"]["S"] for item in jobs["Items"])
    # The first job was queued; the one whose command could not be published is failed, not left queued.
    assert statuses == ["failed", "queued"]
