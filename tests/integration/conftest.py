"""Integration fixtures that cost a training: made once per session and shared by the tests that need them."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

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
