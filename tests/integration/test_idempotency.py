"""`Idempotency-Key` on creates, against the real app, moto's DynamoDB and the real broker."""

from __future__ import annotations

import asyncio
import secrets
import time

import pytest

from infra.repositories.dynamo import to_item
from infra.resources import JOBS_BY_TENANT_INDEX
from tests.journeys import png
from tests.support import bearer

pytestmark = pytest.mark.integration

BODY = {"modelId": "tiny-sd", "prompt": "a red fox", "width": 64, "height": 64, "seed": 1}


@pytest.fixture
async def fresh_key(context) -> tuple[str, str]:
    """An API key of a tenant of its own, so a test can count every job that tenant has."""
    tenant = f"tenant-{secrets.token_hex(4)}"
    key = f"lf_test_{secrets.token_hex(16)}"
    await context.api_keys.put(key, tenant_id=tenant, name="idempotency")
    return key, tenant


def with_key(api_key: str, idempotency_key: str) -> dict[str, str]:
    return {**bearer(api_key), "Idempotency-Key": idempotency_key}


async def jobs_of(context, tenant: str) -> list[dict]:
    response = await context.clients.dynamodb.query(
        TableName=context.settings.jobs_table,
        IndexName=JOBS_BY_TENANT_INDEX,
        KeyConditionExpression="tenantId = :t",
        ExpressionAttributeValues={":t": {"S": tenant}},
    )
    return response["Items"]


async def test_a_repeat_gets_the_first_response_and_makes_no_second_job(client, context, fresh_key) -> None:
    api_key, tenant = fresh_key
    first = await client.post("/v1/images/generate", json=BODY, headers=with_key(api_key, "gen-1"))
    again = await client.post("/v1/images/generate", json=BODY, headers=with_key(api_key, "gen-1"))
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json() and again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert len(await jobs_of(context, tenant)) == 1
    # Another key is another request.
    other = await client.post("/v1/images/generate", json=BODY, headers=with_key(api_key, "gen-2"))
    assert other.json()["jobId"] != first.json()["jobId"]
    assert len(await jobs_of(context, tenant)) == 2


async def test_the_same_key_sent_20_times_at_once_makes_one_job(client, context, fresh_key) -> None:
    api_key, tenant = fresh_key
    responses = await asyncio.gather(
        *(client.post("/v1/images/generate", json=BODY, headers=with_key(api_key, "burst")) for _ in range(20))
    )
    assert {r.status_code for r in responses} == {202}, [r.text for r in responses if r.status_code != 202]
    assert len({r.json()["jobId"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 19
    assert len(await jobs_of(context, tenant)) == 1


async def test_the_same_key_with_another_body_is_refused(client, fresh_key) -> None:
    api_key, _ = fresh_key
    first = await client.post("/v1/images/generate", json=BODY, headers=with_key(api_key, "k"))
    assert first.status_code == 202
    changed = await client.post(
        "/v1/images/generate", json={**BODY, "prompt": "a blue fox"}, headers=with_key(api_key, "k")
    )
    assert changed.status_code == 422
    assert changed.json()["error"] == {
        "code": "idempotency_key_reused",
        "message": "this Idempotency-Key was already used with a different request; use a new key",
        "field": "Idempotency-Key",
    }


async def test_keys_are_per_tenant_and_per_endpoint(client, fresh_key, api_key) -> None:
    mine, _ = fresh_key
    first = await client.post("/v1/images/generate", json=BODY, headers=with_key(mine, "shared"))
    theirs = await client.post("/v1/images/generate", json=BODY, headers=with_key(api_key, "shared"))
    assert theirs.status_code == 202 and theirs.json()["jobId"] != first.json()["jobId"]
    model = await client.post("/v1/models", json={"name": "m"}, headers=with_key(mine, "shared"))
    assert model.status_code == 201 and "idempotent-replayed" not in model.headers


async def test_a_refused_request_is_replayed_as_refused(client, fresh_key) -> None:
    api_key, _ = fresh_key
    bad = {**BODY, "numOutputs": 9}
    first = await client.post("/v1/images/generate", json=bad, headers=with_key(api_key, "bad"))
    again = await client.post("/v1/images/generate", json=bad, headers=with_key(api_key, "bad"))
    assert first.status_code == again.status_code == 422 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"


async def test_multipart_repeats_match_despite_new_boundaries(client, fresh_key) -> None:
    api_key, _ = fresh_key
    image = png((10, 20, 30))
    responses = [
        await client.post(
            "/v1/uploads", files={"file": ("a.png", image, "image/png")}, headers=with_key(api_key, "upload")
        )
        for _ in range(2)
    ]
    assert [r.status_code for r in responses] == [201, 201]
    assert responses[0].json()["key"] == responses[1].json()["key"]
    assert responses[1].headers["idempotent-replayed"] == "true"


@pytest.mark.parametrize("key", [b"", b"x" * 256, b"two words", "na\u00efve".encode()])
async def test_malformed_keys_are_400(client, api_key, key: bytes) -> None:
    response = await client.post("/v1/images/generate", json=BODY, headers={**bearer(api_key), "Idempotency-Key": key})
    assert response.status_code == 400 and response.json()["error"]["field"] == "Idempotency-Key"


async def test_without_a_valid_api_key_nothing_is_claimed(client) -> None:
    response = await client.post(
        "/v1/images/generate", json=BODY, headers={"Authorization": "Bearer nope", "Idempotency-Key": "x"}
    )
    assert response.status_code == 401


async def test_expired_records_are_forgotten(client, context, fresh_key) -> None:
    api_key, tenant = fresh_key
    first = await client.post("/v1/images/generate", json=BODY, headers=with_key(api_key, "old"))
    # Age the record past its TTL (DynamoDB deletes late, moto never): it must read as gone.
    items = (await context.clients.dynamodb.scan(TableName=context.settings.idempotency_table))["Items"]
    mine = [i for i in items if i["scope"]["S"].startswith(f"{tenant}\0") and i["scope"]["S"].endswith("\0old")]
    assert len(mine) == 1
    aged = dict(mine[0])
    aged["expiresAt"] = to_item({"x": int(time.time()) - 1})["x"]
    await context.clients.dynamodb.put_item(TableName=context.settings.idempotency_table, Item=aged)
    again = await client.post("/v1/images/generate", json=BODY, headers=with_key(api_key, "old"))
    assert again.status_code == 202 and again.json()["jobId"] != first.json()["jobId"]


async def test_an_oversized_body_with_a_key_is_413(client, api_key) -> None:
    async def chunks():
        for _ in range(40):
            yield b"x" * 65536

    response = await client.post(
        "/v1/images/generate",
        content=chunks(),
        headers={**with_key(api_key, "big"), "Content-Type": "application/json"},
    )
    assert response.status_code == 413


async def test_a_claim_whose_first_request_died_is_taken_over_after_its_lock(client, context, fresh_key) -> None:
    api_key, tenant = fresh_key
    now = int(time.time())
    # What a first request leaves when it dies mid-run: in progress, its lock lapsed, no response.
    await context.clients.dynamodb.put_item(
        TableName=context.settings.idempotency_table,
        Item=to_item(
            {
                "scope": f"{tenant}\0POST /v1/images/generate\0died",
                "fingerprint": "from-the-request-that-died",
                "status": "in_progress",
                "lockedUntil": now - 1,
                "expiresAt": now + 3600,
            }
        ),
    )
    first = await client.post("/v1/images/generate", json=BODY, headers=with_key(api_key, "died"))
    assert first.status_code == 202 and "idempotent-replayed" not in first.headers
    again = await client.post("/v1/images/generate", json=BODY, headers=with_key(api_key, "died"))
    assert again.headers["idempotent-replayed"] == "true" and again.json() == first.json()
    assert len(await jobs_of(context, tenant)) == 1
