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


async def train_model(
    client: httpx.AsyncClient,
    key: str,
    name: str,
    colors: tuple[tuple[int, int, int], ...],
    parameters: dict[str, Any] | None = None,
) -> tuple[str, str]:
    """Create a model, upload one image per colour, train it to success; returns (model id, training id)."""
    model_id = (await create_model(client, key, name=name))["id"]
    for color in colors:
        await upload(client, key, model_id, png(color))
    started = await client.post(
        f"/v1/models/{model_id}/trainings",
        json={"trainingSpeed": "fast", "parameters": parameters or QUICK},
        headers=bearer(key),
    )
    assert started.status_code == 202, started.text
    training_id = started.json()["trainingId"]
    finished = await wait_for_training(client, key, model_id, training_id, ("succeeded", "failed"))
    assert finished["status"] == "succeeded", finished
    return model_id, training_id


async def download(url: str) -> bytes:
    """The bytes behind a presigned URL."""
    async with httpx.AsyncClient() as http:
        response = await http.get(url)
    assert response.status_code == 200, response.text
    return response.content
