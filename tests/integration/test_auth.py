"""Authentication against the real app and moto: Bearer and Basic (seed 003), the API-key cache's bound on a
revoked key, and `DELETE /v1/models/{id}` as clients of seeds 000, 001 and 003 send it, each unchanged."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from functions.api.app import create_app
from functions.api.dependencies import open_context
from infra.bootstrap import bootstrap
from infra.repositories.api_keys import ApiKeyRepository, hash_api_key
from infra.repositories.dynamo import to_item
from infra.signing import generate_signing_secret, signed_headers
from tests.support import bearer

pytestmark = pytest.mark.integration

GENERATE = {"modelId": "tiny-sd", "prompt": "a red fox", "width": 64, "height": 64, "seed": 1}


def basic(key: str, secret: str) -> dict[str, str]:
    """What `curl -u KEY:SECRET` sends."""
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()}


async def new_key(context, *, secret: str | None = None, require_signed_deletes: bool = True) -> str:
    key = f"lf_test_{secrets.token_hex(16)}"
    tenant = f"tenant-{secrets.token_hex(4)}"
    await context.api_keys.put(
        key, tenant_id=tenant, name="auth", signing_secret=secret, require_signed_deletes=require_signed_deletes
    )
    return key


async def new_model(client: httpx.AsyncClient, headers: dict[str, str], body: dict) -> str:
    response = await client.post("/v1/models", json=body, headers=headers)
    assert response.status_code == 201, response.text
    data = response.json()
    return data.get("modelId") or data["id"]


async def test_basic_with_the_signing_secret_authenticates_and_a_wrong_secret_is_401(client, context) -> None:
    secret = generate_signing_secret()
    key = await new_key(context, secret=secret)
    model_id = await new_model(client, basic(key, secret), {"name": "Cinematic Realism"})
    # The same tenant whichever scheme: the model made with Basic is found with Bearer.
    assert (await client.get(f"/v1/models/{model_id}", headers=bearer(key))).status_code == 200
    assert (await client.post("/v1/images/generate", json=GENERATE, headers=basic(key, secret))).status_code == 202
    for headers in (
        basic(key, secret + "x"),
        basic(key, "lfs_wrong"),
        basic("lf_unknown", secret),
        {"Authorization": "Basic !!!"},
        {"Authorization": "Basic " + base64.b64encode(key.encode()).decode()},  # no secret
    ):
        response = await client.get(f"/v1/models/{model_id}", headers=headers)
        assert response.status_code == 401 and response.json()["error"]["code"] == "unauthorized", headers
        assert "Basic" in response.headers["www-authenticate"]


async def test_basic_without_a_stored_secret_is_401(client, context) -> None:
    key = await new_key(context)  # no signing secret: nothing for Basic to prove
    response = await client.get("/v1/models", headers=basic(key, "anything"))
    assert response.status_code == 401


async def test_idempotency_scopes_basic_and_bearer_to_the_same_tenant(client, context) -> None:
    secret = generate_signing_secret()
    key = await new_key(context, secret=secret)
    first = await client.post(
        "/v1/images/generate", json=GENERATE, headers={**basic(key, secret), "Idempotency-Key": "auth-1"}
    )
    again = await client.post(
        "/v1/images/generate", json=GENERATE, headers={**bearer(key), "Idempotency-Key": "auth-1"}
    )
    assert first.status_code == again.status_code == 202
    assert again.json()["jobId"] == first.json()["jobId"] and again.headers["idempotent-replayed"] == "true"
    # A wrong Basic secret claims nothing: the app answers 401, and the key stays free for the real caller.
    wrong = await client.post(
        "/v1/images/generate", json=GENERATE, headers={**basic(key, "lfs_wrong"), "Idempotency-Key": "auth-2"}
    )
    assert wrong.status_code == 401
    right = await client.post(
        "/v1/images/generate", json=GENERATE, headers={**bearer(key), "Idempotency-Key": "auth-2"}
    )
    assert right.status_code == 202 and "idempotent-replayed" not in right.headers


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def cached_app(bootstrapped) -> AsyncIterator[tuple[httpx.AsyncClient, FakeClock, object]]:
    """An app of its own whose API-key cache (5 s) runs on a fake clock."""
    app = create_app(bootstrapped.model_copy(update={"api_key_cache_seconds": 5}))
    context = await open_context(app.state)
    clock = FakeClock()
    context.api_key_cache.clock = clock
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        yield client, clock, context
    await context.close()


async def test_a_revoked_key_is_refused_once_the_cache_ttl_has_passed(cached_app, context) -> None:
    client, clock, app_context = cached_app
    key = await new_key(app_context)
    assert (await client.get("/v1/models", headers=bearer(key))).status_code == 200
    # Revoked by another process (an operator's tool: its own repository, not this app's cache).
    await ApiKeyRepository(context.clients.dynamodb, context.settings.api_keys_table).revoke(key)
    clock.now += 4
    # Within the TTL this process may still trust its read: that is the bounded staleness.
    assert (await client.get("/v1/models", headers=bearer(key))).status_code == 200
    clock.now += 1.01
    response = await client.get("/v1/models", headers=bearer(key))
    assert response.status_code == 401 and response.json()["error"]["message"] == "invalid API key"
    # Revoked in this process: refused at once, whatever the clock.
    other = await new_key(app_context)
    assert (await client.get("/v1/models", headers=bearer(other))).status_code == 200
    await app_context.api_keys.revoke(other)
    assert (await client.get("/v1/models", headers=bearer(other))).status_code == 401


async def test_seed_000_client_deletes_with_a_signature_under_either_policy(client, context) -> None:
    for require in (True, False):
        secret = generate_signing_secret()
        key = await new_key(context, secret=secret, require_signed_deletes=require)
        model_id = await new_model(
            client,
            bearer(key),
            {
                # Seed 000's own body (the test settings alias its base model).
                "name": "My Custom Model",
                "description": "A model specialized for cyberpunk aesthetics",
                "baseModel": "realm-base-v2.1",
                "tags": ["cyberpunk", "female", "photorealistic"],
            },
        )
        path = f"/v1/models/{model_id}"
        # A signature that is sent is checked, even where the key needs none.
        forged = signed_headers("lfs_wrong", "DELETE", path, int(time.time()))
        response = await client.delete(path, headers={**bearer(key), **forged})
        assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_signature"
        signed = signed_headers(secret, "DELETE", path, int(time.time()))
        assert (await client.delete(path, headers={**bearer(key), **signed})).status_code == 204
        assert (await client.get(path, headers=bearer(key))).status_code == 404


async def test_seed_001_client_deletes_with_the_key_alone_where_its_key_allows(client, context) -> None:
    key = await new_key(context, require_signed_deletes=False)  # seed 001 keys need no signing secret
    model_id = await new_model(client, bearer(key), {"displayName": "Summer Collection Style Model"})
    path = f"/v1/models/{model_id}"
    assert (await client.delete(path, headers=bearer(key))).status_code == 204
    assert (await client.get(path, headers=bearer(key))).status_code == 404


async def test_seed_003_client_deletes_with_basic_key_and_secret(client, context) -> None:
    secret = generate_signing_secret()
    key = await new_key(context, secret=secret)  # requires signed deletes: Basic's secret is the proof
    model_id = await new_model(client, basic(key, secret), {"name": "Cinematic Realism"})
    path = f"/v1/models/{model_id}"
    assert (await client.delete(path, headers=basic(key, secret))).status_code == 204
    assert (await client.get(path, headers=basic(key, secret))).status_code == 404


async def test_keys_stored_before_the_policy_still_need_a_signature(client, context) -> None:
    secret = generate_signing_secret()
    key = f"lf_test_{secrets.token_hex(16)}"
    await context.api_keys.put(key, tenant_id=f"tenant-{secrets.token_hex(4)}", name="old", signing_secret=secret)
    # A record written before `requireSignedDeletes` existed: the attribute is absent (the app has not read
    # this key yet, so nothing is cached).
    await context.clients.dynamodb.update_item(
        TableName=context.settings.api_keys_table,
        Key=to_item({"keyHash": hash_api_key(key)}),
        UpdateExpression="REMOVE requireSignedDeletes",
    )
    model_id = await new_model(client, bearer(key), {"name": "old key"})
    unsigned = await client.delete(f"/v1/models/{model_id}", headers=bearer(key))
    assert unsigned.status_code == 401 and unsigned.json()["error"]["code"] == "signature_required"


async def test_bootstrap_stores_the_dev_keys_delete_policy(bootstrapped, context) -> None:
    for require in (True, False):
        key = f"lf_dev_{secrets.token_hex(8)}"
        settings = bootstrapped.model_copy(
            update={"dev_api_key": SecretStr(key), "dev_signing_secret": None, "dev_require_signed_deletes": require}
        )
        await bootstrap(settings, kafka=False)
        record = await ApiKeyRepository(context.clients.dynamodb, settings.api_keys_table).lookup(key)
        assert record is not None and record.tenantId == "dev" and record.requireSignedDeletes is require
