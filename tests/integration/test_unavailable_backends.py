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
    dead = Broker.__new__(Broker)
    dead.port = free_port()  # nothing listens here
    app = create_app(bootstrapped.model_copy(update={"kafka_bootstrap_servers": dead.bootstrap_servers}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        response = await client.post(
            "/v1/images/generate", json={"modelId": "tiny-sd", "prompt": "p"}, headers=bearer(api_key)
        )
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "service_unavailable"
    assert response.headers["retry-after"] == "5"
