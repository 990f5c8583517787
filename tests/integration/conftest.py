"""Integration fixtures shared across modules, made once per session: trained models (they cost a training),
and an operator setup that allows loopback for outgoing calls, with the webhooks function running on it."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from functions.api.app import create_app
from infra.runtime import ServiceContext
from tests.conftest import lifecycle_source
from tests.journeys import QUICK, train_model


@dataclass(frozen=True)
class TrainedModel:
    """A model of tenant-a with one succeeded training (two epochs)."""

    model_id: str
    training_id: str


@pytest.fixture(scope="session")
async def trained_pair(client, api_key, worker, trainer) -> tuple[TrainedModel, TrainedModel]:
    """Two trained LoRA models of tenant-a on tiny-sd, trained on different colours."""
    models = []
    for name, colors in (("reds", ((230, 20, 20), (200, 40, 30))), ("blues", ((20, 30, 230), (40, 60, 200)))):
        model_id, training_id = await train_model(client, api_key, name, colors, {**QUICK, "learningRate": 0.005})
        models.append(TrainedModel(model_id, training_id))
    return models[0], models[1]


@pytest.fixture(scope="session")
def loopback_settings(bootstrapped):
    """An operator who allows loopback (where the test receiver listens) for outgoing calls."""
    return bootstrapped.model_copy(
        update={
            "egress_allowed_networks": ["127.0.0.0/8"],
            "kafka_webhooks_consumer_group": f"whk-{secrets.token_hex(3)}",
        }
    )


@pytest.fixture(scope="session")
async def loopback_context(loopback_settings) -> AsyncIterator[ServiceContext]:
    context = await ServiceContext(loopback_settings).open()
    try:
        yield context
    finally:
        await context.close()


@pytest.fixture(scope="session")
async def partner_api(loopback_settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(loopback_settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        yield client
    if app.state.context is not None:
        await app.state.context.close()


@pytest.fixture(scope="session")
async def webhooks_source(loopback_settings, poller) -> AsyncIterator:
    """functions.webhooks on the lifecycle topic, as the loopback-allowing operator runs it."""
    from functions.webhooks.handler import WebhooksLambda

    handler = WebhooksLambda(lambda: loopback_settings)
    group = loopback_settings.kafka_webhooks_consumer_group
    async with lifecycle_source(loopback_settings, handler, group, "webhooks"):
        yield handler
