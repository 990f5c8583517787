"""The operator API's tenants over the real app and moto: created once (409 the second time, 422 for a bad id),
shown with their own quotas, the limits in effect and their keys (never a key's value or secret), changed, and
404 when unknown. A suspended tenant's key is refused (403) until it is active again."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr

from functions.api.app import create_app
from tests.support import bearer

pytestmark = pytest.mark.integration

TOKEN = f"lfa_test_{secrets.token_hex(16)}"


@pytest.fixture(scope="module")
async def operator(bootstrapped) -> AsyncIterator[httpx.AsyncClient]:
    """The app with an operator token and no key cache (a suspension is seen at once), over ASGI."""
    app = create_app(bootstrapped.model_copy(update={"admin_token": SecretStr(TOKEN), "api_key_cache_seconds": 0.0}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin.test") as client:
        yield client
    if app.state.context is not None:
        await app.state.context.close()


async def test_a_tenant_is_created_shown_with_its_limits_and_keys_and_changed(operator, bootstrapped) -> None:
    admin = bearer(TOKEN)
    tenant = f"adm-{secrets.token_hex(3)}"
    body = {"tenantId": tenant, "displayName": "Acme", "quotas": {"activeGenerations": 3}}
    created = await operator.post("/v1/admin/tenants", json=body, headers=admin)
    assert created.status_code == 201, created.text
    assert (created.json()["status"], created.json()["quotas"]) == ("active", {"activeGenerations": 3})
    again = await operator.post("/v1/admin/tenants", json=body, headers=admin)
    assert again.status_code == 409 and again.json()["error"]["code"] == "tenant_exists"
    bad = await operator.post("/v1/admin/tenants", json={"tenantId": "no spaces/here"}, headers=admin)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "tenantId"

    issued = (await operator.post("/v1/admin/keys", json={"tenantId": tenant, "label": "ci"}, headers=admin)).json()
    shown = await operator.get(f"/v1/admin/tenants/{tenant}", headers=admin)
    assert shown.status_code == 200, shown.text
    detail = shown.json()
    assert detail["effectiveQuotas"]["activeGenerations"] == 3
    assert detail["effectiveQuotas"]["activeTrainings"] == bootstrapped.quota_active_trainings
    assert detail["usage"] == {"storageBytes": 0}
    assert [(k["keyId"], k["label"], k["status"]) for k in detail["keys"]] == [(issued["keyId"], "ci", "active")]
    assert issued["apiKey"] not in shown.text and issued["signingSecret"] not in shown.text
    assert tenant in [t["tenantId"] for t in (await operator.get("/v1/admin/tenants", headers=admin)).json()]

    changed = await operator.patch(
        f"/v1/admin/tenants/{tenant}", json={"status": "suspended", "quotas": {"storageBytes": 5}}, headers=admin
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["status"], changed.json()["quotas"]) == ("suspended", {"storageBytes": 5})
    assert (await operator.get("/v1/models", headers=bearer(issued["apiKey"]))).status_code == 403
    await operator.patch(f"/v1/admin/tenants/{tenant}", json={"status": "active"}, headers=admin)
    assert (await operator.get("/v1/models", headers=bearer(issued["apiKey"]))).status_code == 200

    for method, path in (("GET", "/v1/admin/tenants/nobody-here"), ("PATCH", "/v1/admin/tenants/nobody-here")):
        missing = await operator.request(method, path, json={} if method == "PATCH" else None, headers=admin)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "tenant_not_found", path


async def test_keys_are_listed_without_secrets_and_rotation_refuses_a_revoked_key(operator) -> None:
    admin = bearer(TOKEN)
    tenant = f"adm-{secrets.token_hex(3)}"
    issued = await operator.post("/v1/admin/keys", json={"tenantId": tenant}, headers=admin)
    assert issued.status_code == 201 and issued.json()["tenantCreated"] is True, issued.text
    key = issued.json()
    listed = await operator.get("/v1/admin/keys", params={"tenant": tenant}, headers=admin)
    assert [k["keyId"] for k in listed.json()] == [key["keyId"]]
    assert key["apiKey"] not in listed.text and key["signingSecret"] not in listed.text and "keyHash" not in listed.text
    revoked = await operator.post(f"/v1/admin/keys/{key['keyId']}/revoke", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    twice = await operator.post(f"/v1/admin/keys/{key['keyId']}/revoke", headers=admin)
    assert twice.status_code == 200 and twice.json()["status"] == "revoked"
    rotated = await operator.post(f"/v1/admin/keys/{key['keyId']}/rotate", json={"graceSeconds": 60}, headers=admin)
    assert rotated.status_code == 409 and rotated.json()["error"]["code"] == "key_not_rotatable"
    unknown = await operator.post("/v1/admin/keys/key_000000000000/rotate", headers=admin)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "key_not_found"
