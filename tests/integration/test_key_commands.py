"""`lorafoundry keys …` as an operator runs it: a subprocess talking over real HTTP to the operator API of an app
served by uvicorn (its own event loop, clients and caches, as another API process would be). A key it creates
works on a tenant route, is listed without its value or secret, and is refused by another API process (the session
app, whose key cache has the default TTL) within 5 s of its revocation; a rotated-out key works through its grace,
and not at all with grace 0. The operator API takes only the operator's token."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import secrets
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from functions.api.app import create_app
from infra.local.cli import build_parser
from infra.local.processes import free_port
from tests.support import bearer, eventually

REVOCATION_PROMISE_S = 5.0


@dataclass(frozen=True)
class OperatorApi:
    url: str
    token: str


@pytest.fixture(scope="module")
def operator_api(bootstrapped) -> Iterator[OperatorApi]:
    """The app, with an operator token, served over HTTP by uvicorn in a thread of its own."""
    token = f"lfa_test_{secrets.token_hex(16)}"
    app = create_app(bootstrapped.model_copy(update={"admin_token": SecretStr(token)}))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(400):  # up to 20 s: a thread's start-up, not a condition of the code under test
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.05)
        assert server.started, "uvicorn did not start"
        yield OperatorApi(f"http://127.0.0.1:{port}", token)
    finally:
        server.should_exit = True
        thread.join(30)


def _command(api: OperatorApi | None, *args: str) -> list[str]:
    return [*args, "--api", api.url if api is not None else "http://127.0.0.1:9"]


def _env(api: OperatorApi | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "LF_ADMIN_TOKEN"}
    return {**env, "LF_ADMIN_TOKEN": api.token} if api is not None else env


def _lorafoundry(api: OperatorApi, *args: str) -> subprocess.CompletedProcess[str]:
    """`lorafoundry ARGS --api URL` as a subprocess, the operator token in LF_ADMIN_TOKEN."""
    return subprocess.run(
        [sys.executable, "-m", "infra.local.cli", *_command(api, *args)],
        env=_env(api),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def _cli(api: OperatorApi | None, *args: str) -> subprocess.CompletedProcess[str]:
    """The same command run in this process (a subprocess's start-up costs seconds): the CLI's parser and
    function in a thread, its output captured; `api` None: no LF_ADMIN_TOKEN."""

    def run() -> subprocess.CompletedProcess[str]:
        out, err = io.StringIO(), io.StringIO()
        saved = os.environ.get("LF_ADMIN_TOKEN")
        os.environ.pop("LF_ADMIN_TOKEN", None)
        if api is not None:
            os.environ["LF_ADMIN_TOKEN"] = api.token
        try:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                parsed = build_parser().parse_args(_command(api, *args))
                code = parsed.func(parsed)
        finally:
            os.environ.pop("LF_ADMIN_TOKEN", None)
            if saved is not None:
                os.environ["LF_ADMIN_TOKEN"] = saved
        return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())

    return await asyncio.to_thread(run)


def _issued(done: subprocess.CompletedProcess[str]) -> dict[str, str]:
    assert done.returncode == 0, done.stderr
    return dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)


async def _status(client: httpx.AsyncClient, key: str) -> int:
    return (await client.get("/v1/models", headers=bearer(key))).status_code


async def _refused_within_promise(client: httpx.AsyncClient, key: str, what: str) -> None:
    async def probe() -> int:
        return await _status(client, key)

    await eventually(probe, lambda status: status == 401, timeout_s=REVOCATION_PROMISE_S, what=what)


async def test_a_created_key_works_is_listed_without_secrets_and_is_refused_soon_after_revocation(
    operator_api, client
) -> None:
    tenant = f"cli-{secrets.token_hex(3)}"
    created = await asyncio.to_thread(_lorafoundry, operator_api, "keys", "create", "--tenant", tenant, "--label", "ci")
    issued = _issued(created)
    key_id, raw_key, secret = issued["Key id"], issued["API key"], issued["Signing secret"]
    assert "shown again" in created.stderr and f"Created tenant {tenant}" in created.stderr
    async with httpx.AsyncClient(base_url=operator_api.url) as over_http:
        assert await _status(over_http, raw_key) == 200
    assert await _status(client, raw_key) == 200  # the other API process has it cached now

    listed = await _cli(operator_api, "keys", "list", "--tenant", tenant)
    assert listed.returncode == 0, listed.stderr
    assert key_id in listed.stdout and "ci" in listed.stdout and "active" in listed.stdout
    assert raw_key not in listed.stdout and secret not in listed.stdout

    revoked = await _cli(operator_api, "keys", "revoke", key_id)
    assert revoked.returncode == 0 and revoked.stdout.strip() == f"Revoked: {key_id}", revoked.stderr
    await _refused_within_promise(client, raw_key, "the revoked key to be refused by another API process")


async def test_a_rotated_key_works_through_its_grace_and_not_at_all_without_one(operator_api, client) -> None:
    first = _issued(await _cli(operator_api, "keys", "create", "--tenant", f"rot-{secrets.token_hex(3)}"))
    rotated = await _cli(operator_api, "keys", "rotate", first["Key id"], "--grace", "3600")
    second = _issued(rotated)
    assert second["API key"] != first["API key"] and f"Old key {first['Key id']} stops working at" in rotated.stdout
    assert await _status(client, first["API key"]) == 200  # within its grace
    assert await _status(client, second["API key"]) == 200

    third = await _cli(operator_api, "keys", "rotate", second["Key id"], "--grace", "0")
    assert _issued(third)["Key id"] != second["Key id"] and "stops working now" in third.stdout
    assert await _status(client, _issued(third)["API key"]) == 200
    await _refused_within_promise(client, second["API key"], "the key rotated out with no grace to be refused")


async def test_errors_are_one_line_and_exit_1(operator_api) -> None:
    unknown = await _cli(operator_api, "keys", "revoke", "key_000000000000")
    assert unknown.returncode == 1 and "no key has the id 'key_000000000000'" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    tokenless = await _cli(None, "keys", "list")
    assert tokenless.returncode == 1
    assert tokenless.stderr.strip() == "error: --api needs the operator token in LF_ADMIN_TOKEN"


async def test_the_operator_api_takes_only_the_operator_token(operator_api, client, api_key) -> None:
    async with httpx.AsyncClient(base_url=operator_api.url) as over_http:
        as_tenant = await over_http.get("/v1/admin/tenants", headers=bearer(api_key))
        assert as_tenant.status_code == 401 and as_tenant.json()["error"]["code"] == "unauthorized"
        assert (await over_http.get("/v1/admin/keys", headers=bearer(operator_api.token))).status_code == 200
    off = await client.get("/v1/admin/tenants", headers=bearer(api_key))  # the session app has no operator token
    assert off.status_code == 403 and off.json()["error"]["code"] == "operator_api_disabled"
