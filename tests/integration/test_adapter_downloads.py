"""Adapter downloads: a presigned URL to the final adapter or an epoch, of a model or of a training, in diffusers'
or kohya's naming; the file behind the URL parses, and the kohya one says what it is in sd-scripts' `ss_*` fields."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI

from events.records.jobs import TrainingJob
from events.usecases.adapter_imports import AdapterFile, import_adapter
from functions.adapter_files import LoraFiles
from functions.api.routes.adapter_downloads import router
from infra.lora_files.safetensors_file import read_file
from tests.journeys import create_model, download
from tests.support import bearer

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("worker", "trainer")]


@pytest.fixture(scope="module", autouse=True)
def downloads_routed(app: FastAPI) -> None:
    """The routes on the session's app, until functions/api/app.py includes them."""
    if not any(getattr(route, "path", "") == "/v1/models/{modelId}/adapter" for route in app.routes):
        app.include_router(router)


async def _get(client: httpx.AsyncClient, key: str, path: str, **params: str) -> httpx.Response:
    return await client.get(path, params=params, headers=bearer(key))


async def _file(client: httpx.AsyncClient, key: str, path: str, **params: str) -> tuple[dict, dict, dict]:
    response = await _get(client, key, path, **params)
    assert response.status_code == 200, response.text
    body = response.json()
    data = await download(body["url"])
    assert body["bytes"] == len(data)
    header, tensors = read_file(data)
    return body, header.metadata, tensors


async def test_a_models_adapter_downloads_in_both_formats(client, api_key, context, trained_pair) -> None:
    reds, _ = trained_pair
    path = f"/v1/models/{reds.model_id}/adapter"
    body, metadata, tensors = await _file(client, api_key, path)
    assert body["format"] == "diffusers" and body["epoch"] is None and body["source"] == "training"
    assert body["trainingId"] == reds.training_id and body["fileName"].endswith(".safetensors")
    assert body["expiresIn"] > 0 and body["expiresAt"].endswith("Z")
    assert all(k.startswith("unet.") and ".lora_" in k for k in tensors)

    body, metadata, kohya = await _file(client, api_key, path, format="kohya")
    assert body["format"] == "kohya"
    assert all(k.startswith("lora_unet_") for k in kohya) and any(k.endswith(".alpha") for k in kohya)
    assert len(kohya) == len(tensors) // 2 * 3  # down, up and alpha per layer
    assert metadata["ss_base_model_version"] == "sd_v1" and metadata["ss_sd_model_name"] == "tiny-sd"
    assert metadata["ss_network_dim"] == "4" and metadata["ss_network_alpha"] == "4.0"
    assert metadata["ss_num_epochs"] == "2" and metadata["ss_epoch"] == "2" and metadata["ss_steps"] == "6"
    assert metadata["ss_resolution"].startswith("(") and len(metadata["sshs_model_hash"]) == 64
    assert metadata["ss_output_name"] == body["fileName"].removesuffix(".safetensors")
    training = await context.jobs.get_as(reds.training_id, TrainingJob)
    assert json.loads(metadata["ss_tag_frequency"]) == {
        body["fileName"].removesuffix(".safetensors"): {training.triggerWord: 2}
    }
    # made once: a second download is the same stored file
    again, _, _ = await _file(client, api_key, path, format="kohya")
    assert again["url"].split("?")[0] == body["url"].split("?")[0]


async def test_an_epoch_downloads_from_the_model_and_from_its_training(client, api_key, trained_pair) -> None:
    reds, _ = trained_pair
    final = (await _file(client, api_key, f"/v1/models/{reds.model_id}/adapter"))[2]
    by_model = await _file(client, api_key, f"/v1/models/{reds.model_id}/adapter", epoch="1", format="kohya")
    assert by_model[0]["epoch"] == "000001" and by_model[0]["fileName"].endswith("-000001.safetensors")
    assert by_model[1]["ss_epoch"] == "1" and by_model[1]["ss_steps"] == "3"
    training_path = f"/v1/models/{reds.model_id}/trainings/{reds.training_id}/adapter"
    first = await _file(client, api_key, training_path, epoch="000001")
    assert first[0]["epoch"] == "000001"
    assert any(not (first[2][k].array == final[k].array).all() for k in final), "epoch 1 is not the final adapter"
    last = await _file(client, api_key, training_path)
    assert last[0]["epoch"] is None and all((last[2][k].array == final[k].array).all() for k in final)


async def test_refusals(client, api_key, other_api_key, trained_pair) -> None:
    reds, _ = trained_pair
    untrained = (await create_model(client, api_key, name="no adapter yet"))["id"]
    response = await _get(client, api_key, f"/v1/models/{untrained}/adapter")
    assert response.status_code == 409 and response.json()["error"]["code"] == "adapter_not_ready"
    for path in (
        f"/v1/models/{reds.model_id}/adapter",
        f"/v1/models/{reds.model_id}/trainings/{reds.training_id}/adapter",
    ):
        unknown = await _get(client, api_key, path, epoch="7")
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_epoch", unknown.text
        assert "000001" in unknown.json()["error"]["message"]
        other = await _get(client, other_api_key, path)
        assert other.status_code == 404, other.text
        bad = await _get(client, api_key, path, format="ckpt")
        assert bad.status_code == 422, bad.text
    missing = await _get(client, api_key, f"/v1/models/{reds.model_id}/trainings/trn_nope/adapter")
    assert missing.status_code == 404


async def test_an_imported_adapter_downloads_the_same_way(client, api_key, context, trained_pair) -> None:
    reds, _ = trained_pair
    _, _, tensors = await _file(client, api_key, f"/v1/models/{reds.model_id}/adapter")
    model_id = (await create_model(client, api_key, name="imported one"))["id"]
    # the import use case itself (its routes are helper I's), with a kohya file of the trained adapter
    kohya = await download(
        (await _file(client, api_key, f"/v1/models/{reds.model_id}/adapter", format="kohya"))[0]["url"]
    )
    model = await import_adapter(
        context, LoraFiles(context.settings), "tenant-a", model_id, AdapterFile(kohya, "k.safetensors")
    )
    path = f"/v1/models/{model_id}/adapter"
    body, _, stored = await _file(client, api_key, path)
    assert body["source"] == "import" and body["trainingId"] == model.adapterTrainingId and body["epoch"] is None
    assert set(stored) == set(tensors) and all((stored[k].array == tensors[k].array).all() for k in tensors)
    body, metadata, exported = await _file(client, api_key, path, format="kohya")
    assert body["fileName"] == "imported_one.safetensors" and metadata["ss_output_name"] == "imported_one"
    assert metadata["ss_network_dim"] == "4" and "ss_steps" not in metadata and "ss_num_epochs" not in metadata
    assert set(exported) == set(read_file(kohya)[1])
    epoch = await _get(client, api_key, path, epoch="1")
    assert epoch.status_code == 404 and epoch.json()["error"]["code"] == "unknown_epoch"
