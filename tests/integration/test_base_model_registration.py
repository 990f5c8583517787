"""Base models registered at run time, as an operator does it: through the operator API (PUT, validated; GET;
DELETE) of an app served over HTTP, and through `lorafoundry base-models …`. Another API process (the session app,
whose cache has the default period) offers a registered model within a few seconds: listed in `GET /v1/base-models`
with its family, and a model can be created on it; a worker finds it too; once removed, it is offered no more."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import secrets
import subprocess
import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from functions.api.app import create_app
from infra.base_models import Family
from infra.local.cli import build_parser
from infra.local.processes import free_port
from infra.repositories.base_models import RegisteredBaseModelReader
from tests.support import bearer, eventually

pytestmark = pytest.mark.integration

TOKEN = f"lfa_test_{secrets.token_hex(16)}"
OFFERED_WITHIN_S = 10.0  # the API's cache period (2 s by default) and then some


@pytest.fixture(scope="module")
def operator_url(bootstrapped) -> Iterator[str]:
    """An app with an operator token and no caches (its own reads are fresh), served over HTTP in a thread."""
    settings = bootstrapped.model_copy(update={"admin_token": SecretStr(TOKEN), "api_key_cache_seconds": 0.0})
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(400):  # up to 20 s: a thread's start-up, not a condition of the code under test
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.05)
        assert server.started, "uvicorn did not start"
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


async def _catalog(client: httpx.AsyncClient, api_key: str) -> dict[str, dict]:
    response = await client.get("/v1/base-models", headers=bearer(api_key))
    assert response.status_code == 200, response.text
    return {entry["name"]: entry for entry in response.json()["data"]}


async def test_a_base_model_registered_through_the_api_is_offered_and_then_withdrawn(
    operator_url, client, api_key, bootstrapped
) -> None:
    name = f"studio-xl-{secrets.token_hex(3)}"
    admin = bearer(TOKEN)
    async with httpx.AsyncClient(base_url=operator_url) as operator:
        refusals = {
            "tiny-sd": ({"source": "/models/x"}, 409, "base_model_reserved"),
            name: ({"source": "/models/x.safetensors"}, 422, "invalid_base_model"),
            f"{name}-rel": ({"source": "models/x"}, 422, "invalid_base_model"),
            f"{name}-pickle": ({"source": "/models/x.ckpt"}, 422, "invalid_base_model"),
            f"{name}-climb": ({"source": "s3://b/../x/"}, 422, "invalid_base_model"),
            f"{name}-fam": ({"source": "/models/x", "family": "sd-3"}, 422, None),
            f"{name}-sha": ({"source": "/models/x.safetensors", "config": "/c", "sha256": "nothex"}, 422, None),
        }
        for refused, (body, status, code) in refusals.items():
            response = await operator.put(f"/v1/admin/base-models/{refused}", json=body, headers=admin)
            assert response.status_code == status, (refused, response.text)
            assert code is None or response.json()["error"]["code"] == code
        tenant_try = await operator.put(f"/v1/admin/base-models/{name}", json={"source": "/m"}, headers=bearer(api_key))
        assert tenant_try.status_code in (401, 403)

        body = {"source": "s3://weights/studio-xl/", "family": "sd-xl"}
        registered = await operator.put(f"/v1/admin/base-models/{name}", json=body, headers=admin)
        assert registered.status_code == 200, registered.text
        assert registered.json()["family"] == "sd-xl" and registered.json()["source"] == body["source"]
        listed = (await operator.get("/v1/admin/base-models", headers=admin)).json()
        assert name in [entry["name"] for entry in listed]

        # Another API process offers it within its cache period, with its family's type.
        catalog = await eventually(
            lambda: _catalog(client, api_key), lambda c: name in c, OFFERED_WITHIN_S, "the registered base model"
        )
        assert (catalog[name]["family"], catalog[name]["type"]) == ("sd-xl", "sd-xl-lora")
        created = await client.post(
            "/v1/models", json={"name": "on a registered base", "baseModel": name}, headers=bearer(api_key)
        )
        assert created.status_code == 201, created.text
        assert created.json()["baseModel"] == name
        # And a worker finds its weights' entry (what it loads).
        spec = await asyncio.to_thread(RegisteredBaseModelReader(bootstrapped).spec, name)
        assert spec is not None and spec.family is Family.SDXL and spec.source == body["source"]

        removed = await operator.delete(f"/v1/admin/base-models/{name}", headers=admin)
        assert removed.status_code == 204, removed.text
        again = await operator.delete(f"/v1/admin/base-models/{name}", headers=admin)
        assert again.status_code == 404 and again.json()["error"]["code"] == "base_model_not_found"
        assert (await operator.get(f"/v1/admin/base-models/{name}", headers=admin)).status_code == 404

    await eventually(
        lambda: _catalog(client, api_key), lambda c: name not in c, OFFERED_WITHIN_S, "the removed base model gone"
    )
    refused = await client.post("/v1/models", json={"name": "too late", "baseModel": name}, headers=bearer(api_key))
    assert refused.status_code == 422, refused.text


async def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`lorafoundry ARGS --api URL` run in this process (a subprocess's start-up costs seconds), in a thread."""

    def run() -> subprocess.CompletedProcess[str]:
        out, err = io.StringIO(), io.StringIO()
        saved = os.environ.get("LF_ADMIN_TOKEN")
        os.environ["LF_ADMIN_TOKEN"] = TOKEN
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                parsed = build_parser().parse_args([*args, "--api", url])
                code = parsed.func(parsed)
        finally:
            os.environ.pop("LF_ADMIN_TOKEN", None)
            if saved is not None:
                os.environ["LF_ADMIN_TOKEN"] = saved
        return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())

    return await asyncio.to_thread(run)


async def test_the_base_models_commands_add_list_and_remove(operator_url) -> None:
    name = f"flux-cli-{secrets.token_hex(3)}"
    sha = "AB" * 32
    added = await _cli(
        operator_url,
        *("base-models", "add", name, "--source", "/models/flux.safetensors"),
        *("--config", "/models/flux-config", "--sha256", sha),
    )
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == f"Registered base model {name} (flux.1): /models/flux.safetensors"

    listed = await _cli(operator_url, "base-models", "list")
    assert listed.returncode == 0, listed.stderr
    row = next(line for line in listed.stdout.splitlines() if line.startswith(name))
    assert "flux.1" in row and "/models/flux-config" in row and sha.lower()[:12] in row

    refused = await _cli(operator_url, "base-models", "add", "tiny-sdxl", "--source", "/models/x")
    assert refused.returncode == 1 and "409" in refused.stderr and "built-in" in refused.stderr

    removed = await _cli(operator_url, "base-models", "remove", name)
    assert removed.returncode == 0 and removed.stdout.strip() == f"Removed base model {name}", removed.stderr
    gone = await _cli(operator_url, "base-models", "remove", name)
    assert gone.returncode == 1 and "404" in gone.stderr
