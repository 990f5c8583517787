"""API-level steps of the model and training journeys, shared by the integration and end-to-end tests."""

from __future__ import annotations

import io
from typing import Any

import httpx
import numpy as np
from PIL import Image

from tests.support import bearer, eventually

# Small enough to train in seconds on a CPU, big enough to have two epochs with samples.
QUICK = {"maxTrainSteps": 6, "nbEpochs": 2, "rank": 4, "learningRate": 0.001, "seed": 7}


def png(color: tuple[int, int, int], size: tuple[int, int] = (64, 64), fmt: str = "PNG") -> bytes:
    """An image of one colour with a little noise (so it is not trivially compressible)."""
    rng = np.random.default_rng(sum(color))
    pixels = np.clip(np.array(color) + rng.normal(0, 8, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


async def create_model(client: httpx.AsyncClient, key: str, **body: Any) -> dict[str, Any]:
    response = await client.post("/v1/models", json=body or {"name": "test model"}, headers=bearer(key))
    assert response.status_code == 201, response.text
    return response.json()


async def upload(client: httpx.AsyncClient, key: str, model_id: str, data: bytes) -> dict[str, Any]:
    response = await client.post(
        f"/v1/models/{model_id}/training-data",
        content=data,
        headers={**bearer(key), "Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 201, response.text
    return response.json()


async def wait_for_training(
    client: httpx.AsyncClient, key: str, model_id: str, training_id: str, statuses: tuple[str, ...]
) -> dict[str, Any]:
    async def probe() -> dict[str, Any]:
        response = await client.get(f"/v1/models/{model_id}/trainings/{training_id}", headers=bearer(key))
        assert response.status_code == 200, response.text
        return response.json()

    return await eventually(probe, lambda v: v["status"] in statuses, timeout_s=120, what=f"training {training_id}")
