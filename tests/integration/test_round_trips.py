"""DynamoDB round trips per job creation, counted on the app's own client: the fewest the promises allow."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from functions.api.app import create_app
from functions.api.dependencies import open_context
from tests.support import bearer

pytestmark = pytest.mark.integration

BODY = {"modelId": "tiny-sd", "prompt": "a red fox", "width": 64, "height": 64, "seed": 1}


@pytest.fixture
async def counted(bootstrapped, api_key) -> AsyncIterator[tuple[httpx.AsyncClient, list[str]]]:
    """An app of its own whose DynamoDB client records every operation it sends."""
    app = create_app(bootstrapped)
    context = await open_context(app.state)
    calls: list[str] = []
    context.clients.dynamodb.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        yield client, calls
    await context.close()


def beyond_the_rate_lease(calls: list[str]) -> list[str]:
    """The calls after the rate limit's lease: the first request of a key in each one-second window takes a share
    of the window's allowance in one UpdateItem (infra/repositories/rate_limits.py), at most one per request."""
    assert calls.count("UpdateItem") <= 1 and ("UpdateItem" not in calls or calls[0] == "UpdateItem"), calls
    return calls[1:] if calls[:1] == ["UpdateItem"] else calls


async def test_a_creation_is_one_write_and_an_idempotent_one_three(counted, api_key) -> None:
    client, calls = counted
    assert (await client.get("/v1/models", headers=bearer(api_key))).status_code == 200  # the key, read once
    calls.clear()
    assert (await client.post("/v1/images/generate", json=BODY, headers=bearer(api_key))).status_code == 202
    # The job record; the key and its tenant came from the caches.
    assert beyond_the_rate_lease(calls) == ["PutItem"]
    calls.clear()
    headers = {**bearer(api_key), "Idempotency-Key": "round-trips"}
    assert (await client.post("/v1/images/generate", json=BODY, headers=headers)).status_code == 202
    assert beyond_the_rate_lease(calls) == ["PutItem", "PutItem", "PutItem"]  # claim, job, stored response
    calls.clear()
    replay = await client.post("/v1/images/generate", json=BODY, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"
    # The failed claim returns the stored response itself.
    assert beyond_the_rate_lease(calls) == ["PutItem"]
