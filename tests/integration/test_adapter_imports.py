"""Importing LoRA files into models on the moto + Tansu stack: each naming imported (diffusers, peft, kohya) and
stored as the diffusers file the generator serves, each bad file refused with a 4xx naming its problem and nothing
left behind, the presigned upload imported (or rejected) by the notification handler, and an imported adapter
served like a trained one: seed 002 generation, seed 001 predictions, a seed 003 composition with a trained model.

The files are made here with torch: a random adapter on a throwaway tiny-sd pipeline (the trainer's own
`save_lora_weights` naming), renamed into peft's and kohya's namings by hand, and a tiny-sdxl adapter for the
wrong family."""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
import safetensors.torch
import torch
from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline
from PIL import Image

from events.records.models import ModelRecord
from events.storage_keys import parse_adapter_upload_key, upload_adapter_key
from functions.api.routes import adapter_imports as adapter_routes
from functions.s3_events import adapter_uploads
from functions.s3_events.adapter_uploads import apply_adapter_upload
from tests.conftest import MODEL_CACHE
from tests.integration.conftest import TrainedModel
from tests.journeys import create_model, download
from tests.model.conftest import load_folder, random_adapter
from tests.support import bearer, eventually
from workers.base_models.tiny_sd import ensure_tiny_sd
from workers.base_models.tiny_sdxl import ensure_tiny_sdxl

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("poller")]

RANK = 4


@pytest.fixture(scope="module", autouse=True)
def adapter_routes_included(app) -> None:
    """The import routes on the session's app (until functions/api/app.py includes them)."""
    if not any(getattr(route, "path", "") == "/v1/models/{modelId}/adapter" for route in app.routes):
        app.include_router(adapter_routes.router)


# -- the files --------------------------------------------------------------------------------------------------
def _renamed(data: bytes, rename: Callable[[str], str], extra: dict[str, torch.Tensor] | None = None) -> bytes:
    tensors = safetensors.torch.load(data)
    return safetensors.torch.save({**{rename(k): v for k, v in tensors.items()}, **(extra or {})})


def _kohya_name(key: str) -> str:
    module, role = key.removeprefix("unet.").rsplit(".lora_", 1)
    return f"lora_unet_{module.replace('.', '_')}.{'lora_down' if role.startswith('A') else 'lora_up'}.weight"


def _kohya_with_alpha(data: bytes, alpha: float) -> bytes:
    """kohya-ss naming with every layer's `.alpha` set to `alpha` (it scales the layer by alpha / rank)."""
    modules = {_kohya_name(k).rsplit(".", 2)[0] for k in safetensors.torch.load(data)}
    return _renamed(data, _kohya_name, {f"{m}.alpha": torch.tensor(alpha) for m in modules})


def _reshaped(data: bytes, which: str) -> bytes:
    """The file with one layer's down weight one column wider (`width`) or its up weight one rank wider (`rank`)."""
    tensors = safetensors.torch.load(data)
    role = "lora_A" if which == "width" else "lora_B"
    name = sorted(k for k in tensors if f".{role}." in k)[0]
    tensor = tensors[name]
    tensors[name] = torch.cat([tensor, torch.zeros(tensor.shape[0], 1, *tensor.shape[2:])], dim=1)
    return safetensors.torch.save(tensors)


def _torch_saved(value: Any) -> bytes:
    buffer = io.BytesIO()
    torch.save(value, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    """Every file the tests import, by name."""
    sd = random_adapter(lambda: load_folder(StableDiffusionPipeline, ensure_tiny_sd(MODEL_CACHE)), seed=3, rank=RANK)
    sdxl = random_adapter(lambda: load_folder(StableDiffusionXLPipeline, ensure_tiny_sdxl(MODEL_CACHE)), seed=4)
    return {
        "diffusers": sd,
        "peft": _renamed(sd, lambda k: k.replace("unet.", "base_model.model.", 1)),
        # alpha = rank: the weights mean what the diffusers file's do.
        "kohya": _kohya_with_alpha(sd, float(RANK)),
        "kohya-half": _kohya_with_alpha(sd, RANK / 2),
        "other": random_adapter(lambda: load_folder(StableDiffusionPipeline, ensure_tiny_sd(MODEL_CACHE)), seed=5),
        "sdxl": sdxl,
        "truncated": sd[: len(sd) // 2],
        "torch.save": _torch_saved(safetensors.torch.load(sd)),
        "pickle": pickle.dumps({"weights": [1.0, 2.0]}),
        "no-lora": safetensors.torch.save({"conv_in.weight": torch.randn(8, 4, 3, 3)}),
        "width": _reshaped(sd, "width"),
        "rank": _reshaped(sd, "rank"),
    }


# -- helpers ----------------------------------------------------------------------------------------------------
def _raw(key: str, name: str | None = None) -> dict[str, str]:
    return {**bearer(key), "content-type": "application/octet-stream", **({"x-file-name": name} if name else {})}


async def _import(client: httpx.AsyncClient, key: str, model_id: str, data: bytes, name: str | None = None):
    return await client.put(f"/v1/models/{model_id}/adapter", content=data, headers=_raw(key, name))


async def _model(context, model_id: str) -> ModelRecord:
    model = await context.models.get(model_id)
    assert model is not None
    return model


async def _stored_bytes(context, tenant_id: str) -> int:
    tenant = await context.tenants.get(tenant_id)
    return tenant.storageBytes if tenant else 0


async def _adapter_keys(context, model_id: str) -> list[str]:
    return await context.store.list_keys(f"models/{model_id}/adapters/")


# -- imports ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("naming", ["diffusers", "peft", "kohya"])
async def test_each_naming_is_imported_as_the_diffusers_file_the_generator_serves(
    client, api_key, context, files, naming
) -> None:
    model_id = (await create_model(client, api_key, name=f"imported {naming}"))["id"]
    stored_before = await _stored_bytes(context, "tenant-a")
    response = await _import(client, api_key, model_id, files[naming], f"cat-{naming}.safetensors")
    assert response.status_code == 200, response.text
    view = response.json()
    imported = view["importedAdapter"]
    assert view["status"] == "active" and view["adapterOrigin"] == "import"
    assert (imported["format"], imported["rank"], imported["fileName"]) == (naming, RANK, f"cat-{naming}.safetensors")
    assert imported["bytes"] == len(files[naming])

    model = await _model(context, model_id)
    assert model.adapterTrainingId == imported["importId"] and model.status.value == "trained"
    [key] = await _adapter_keys(context, model_id)
    assert model.adapterKey == key
    # Whatever naming came in, what is stored is exactly the trainer's diffusers file's tensors.
    stored = safetensors.torch.load(await context.store.get_bytes(key))
    original = safetensors.torch.load(files["diffusers"])
    assert sorted(stored) == sorted(original)
    assert all(torch.equal(stored[k].float(), original[k].float()) for k in original)
    assert await _stored_bytes(context, "tenant-a") == stored_before + model.importedAdapter.storedBytes


async def test_a_kohya_alpha_is_folded_into_the_stored_up_weights(client, api_key, context, files) -> None:
    model_id = (await create_model(client, api_key, name="alpha folded"))["id"]
    response = await _import(client, api_key, model_id, files["kohya-half"])
    assert response.status_code == 200, response.text
    stored = safetensors.torch.load(await context.store.get_bytes((await _model(context, model_id)).adapterKey))
    original = safetensors.torch.load(files["diffusers"])
    # alpha / rank = 0.5 scales each layer's product: folded into its up weights (exact in float32), down kept.
    assert sorted(stored) == sorted(original)
    for key, tensor in original.items():
        assert torch.equal(stored[key], tensor * 0.5 if ".lora_B." in key else tensor), key


async def test_a_second_import_replaces_the_first_and_deletes_it(client, api_key, context, files) -> None:
    model_id = (await create_model(client, api_key, name="reimported"))["id"]
    first = (await _import(client, api_key, model_id, files["diffusers"])).json()["importedAdapter"]
    stored = await _stored_bytes(context, "tenant-a")
    second = (await _import(client, api_key, model_id, files["other"])).json()["importedAdapter"]
    assert second["importId"] != first["importId"]
    assert await _adapter_keys(context, model_id) == [(await _model(context, model_id)).adapterKey]
    # The first file's bytes are freed as the second's are counted (same shapes: the same size).
    assert await _stored_bytes(context, "tenant-a") == stored


# -- refusals ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("sdxl", "adapter_wrong_family"),
        ("truncated", "adapter_truncated"),
        ("torch.save", "adapter_not_safetensors"),
        ("pickle", "adapter_not_safetensors"),
        ("no-lora", "adapter_no_lora_keys"),
        ("width", "adapter_shape_mismatch"),
        ("rank", "adapter_shape_mismatch"),
    ],
)
async def test_each_bad_file_is_refused_by_its_problem_and_leaves_nothing(
    client, api_key, context, files, name, code
) -> None:
    model_id = (await create_model(client, api_key, name=f"refuses {name}"))["id"]
    before = await _model(context, model_id)
    stored = await _stored_bytes(context, "tenant-a")
    response = await _import(client, api_key, model_id, files[name])
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"], error
    assert await _model(context, model_id) == before
    assert await _adapter_keys(context, model_id) == []
    assert await _stored_bytes(context, "tenant-a") == stored


async def test_a_rank_over_the_limit_and_a_file_over_the_size_limit_are_refused(
    client, api_key, context, files, bootstrapped, monkeypatch
) -> None:
    model_id = (await create_model(client, api_key, name="limits"))["id"]
    before = await _model(context, model_id)
    monkeypatch.setattr(bootstrapped, "max_adapter_rank", RANK - 1)
    response = await _import(client, api_key, model_id, files["diffusers"])
    assert response.status_code == 422 and response.json()["error"]["code"] == "adapter_rank_too_large"
    monkeypatch.undo()
    monkeypatch.setattr(bootstrapped, "max_adapter_bytes", len(files["diffusers"]) - 1)
    response = await _import(client, api_key, model_id, files["diffusers"])
    assert response.status_code == 413 and "presigned" in response.json()["error"]["message"]
    assert await _model(context, model_id) == before and await _adapter_keys(context, model_id) == []


async def test_the_model_must_be_the_callers_lora_and_not_training(
    client, api_key, other_api_key, context, files
) -> None:
    model_id = (await create_model(client, api_key, name="guarded"))["id"]
    assert (await _import(client, other_api_key, model_id, files["diffusers"])).status_code == 404
    composition = await create_model(client, api_key, name="mix", type="sd-1_5-composition", baseModel="tiny-sd")
    refused = await _import(client, api_key, composition["id"], files["diffusers"])
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "model_not_lora"
    await context.models.update_fields(model_id, {"status": "training"})
    busy = await _import(client, api_key, model_id, files["diffusers"])
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "model_training"
    assert await _adapter_keys(context, model_id) == []


# -- presigned uploads ------------------------------------------------------------------------------------------
async def _post_to_s3(upload: dict, data: bytes) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(upload["url"], data=upload["fields"], files={"file": ("lora.safetensors", data)})
    assert response.status_code in (200, 201, 204), response.text


async def _settled(client: httpx.AsyncClient, key: str, model_id: str, upload_id: str) -> dict:
    async def probe() -> dict:
        response = await client.get(f"/v1/models/{model_id}/adapter/uploads/{upload_id}", headers=bearer(key))
        assert response.status_code == 200, response.text
        return response.json()

    return await eventually(probe, lambda v: v["status"] != "pending", timeout_s=60, what="adapter upload")


async def _deleted(context, key: str) -> None:
    """The uploaded object is deleted once its upload is settled (settled first: a redelivery must find it)."""

    async def probe() -> bool:
        return await context.store.get_bytes(key) is None

    await eventually(probe, bool, timeout_s=30, what=f"{key} deleted")


async def test_a_presigned_file_is_imported_by_the_notification_and_a_redelivery_changes_nothing(
    client, api_key, context, files, monkeypatch
) -> None:
    # A first read shorter than the header: the handler reads the header again, whole, before the file.
    monkeypatch.setattr(adapter_uploads, "FIRST_READ_BYTES", 16)
    model_id = (await create_model(client, api_key, name="presigned"))["id"]
    response = await client.post(
        f"/v1/models/{model_id}/adapter/presigned", json={"name": "big.safetensors"}, headers=bearer(api_key)
    )
    assert response.status_code == 201, response.text
    upload = response.json()
    await _post_to_s3(upload["upload"], files["kohya"])
    view = await _settled(client, api_key, model_id, upload["uploadId"])
    assert view["status"] == "ready", view
    assert view["model"]["adapterOrigin"] == "import" and view["model"]["importedAdapter"]["format"] == "kohya"
    assert view["importId"] == view["model"]["importedAdapter"]["importId"]
    assert view["model"]["importedAdapter"]["fileName"] == "big.safetensors"
    raw_key = upload_adapter_key("tenant-a", upload["uploadId"])
    await _deleted(context, raw_key)
    served = await _model(context, model_id)

    ref = parse_adapter_upload_key(raw_key)
    assert ref is not None
    await apply_adapter_upload(context, ref)
    assert await _model(context, model_id) == served and len(await _adapter_keys(context, model_id)) == 1


async def test_a_presigned_bad_file_is_rejected_with_its_problem_and_deleted(client, api_key, context, files) -> None:
    model_id = (await create_model(client, api_key, name="presigned bad"))["id"]
    before = await _model(context, model_id)
    upload = (await client.post(f"/v1/models/{model_id}/adapter/presigned", headers=bearer(api_key))).json()
    await _post_to_s3(upload["upload"], files["truncated"])
    view = await _settled(client, api_key, model_id, upload["uploadId"])
    assert view["status"] == "rejected" and view["error"]["code"] == "adapter_truncated", view
    await _deleted(context, upload_adapter_key("tenant-a", upload["uploadId"]))
    assert await _model(context, model_id) == before and await _adapter_keys(context, model_id) == []


async def test_a_form_posted_again_after_its_upload_settled_is_deleted_and_changes_nothing(
    client, api_key, context, files
) -> None:
    model_id = (await create_model(client, api_key, name="posted twice"))["id"]
    upload = (await client.post(f"/v1/models/{model_id}/adapter/presigned", headers=bearer(api_key))).json()
    await _post_to_s3(upload["upload"], files["kohya"])
    assert (await _settled(client, api_key, model_id, upload["uploadId"]))["status"] == "ready"
    raw_key = upload_adapter_key("tenant-a", upload["uploadId"])
    await _deleted(context, raw_key)
    served, stored = await _model(context, model_id), await _stored_bytes(context, "tenant-a")
    # The same form, still within its expiry, with another file: its notification finds the upload settled.
    await _post_to_s3(upload["upload"], files["peft"])
    await _deleted(context, raw_key)
    assert await _model(context, model_id) == served and await _adapter_keys(context, model_id) == [served.adapterKey]
    assert await _stored_bytes(context, "tenant-a") == stored


# -- serving ----------------------------------------------------------------------------------------------------
def _pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


async def _generate(client: httpx.AsyncClient, key: str, model_id: str) -> tuple[dict, np.ndarray]:
    response = await client.post(
        "/v1/images/generate",
        json={"modelId": model_id, "prompt": "a photo of lfzq", "width": 64, "height": 64, "seed": 5},
        headers=bearer(key),
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["jobId"]

    async def probe() -> dict:
        return (await client.get(f"/v1/images/jobs/{job_id}", headers=bearer(key))).json()

    view = await eventually(probe, lambda v: v["status"] in ("completed", "failed"), timeout_s=300, what="generation")
    assert view["status"] == "completed", view
    return view, _pixels(await download(view["images"][0]["url"]))


def _differ(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


@pytest.mark.usefixtures("worker", "trainer")
async def test_an_imported_adapter_generates_alone_and_in_a_composition_with_a_trained_one(
    client, api_key, context, files, trained_pair: tuple[TrainedModel, TrainedModel]
) -> None:
    reds, _ = trained_pair
    model_id = (await create_model(client, api_key, name="imported for generation"))["id"]
    imported = (await _import(client, api_key, model_id, files["diffusers"])).json()["importedAdapter"]

    view, tuned = await _generate(client, api_key, model_id)
    assert view["adapters"] == [{"modelId": model_id, "trainingId": imported["importId"], "scale": 1.0}]
    _, base = await _generate(client, api_key, "tiny-sd")
    _, trained = await _generate(client, api_key, reds.model_id)
    assert _differ(tuned, base) > 1, "the imported adapter changed nothing"

    composition = await create_model(client, api_key, name="mixed", type="sd-1_5-composition", baseModel="tiny-sd")
    concepts = [{"modelId": model_id, "scale": 0.7}, {"modelId": reds.model_id, "scale": 0.7}]
    updated = await client.put(f"/v1/models/{composition['id']}", json={"concepts": concepts}, headers=bearer(api_key))
    assert updated.status_code == 200, updated.text
    view, mixed = await _generate(client, api_key, composition["id"])
    assert [a["trainingId"] for a in view["adapters"]] == [imported["importId"], reds.training_id]
    assert _differ(mixed, tuned) > 1 and _differ(mixed, trained) > 1, "the mix is one of its adapters alone"


@pytest.mark.usefixtures("worker", "trainer")
async def test_a_prediction_mixes_an_imported_adapter_with_a_trained_one(
    client, api_key, files, trained_pair: tuple[TrainedModel, TrainedModel]
) -> None:
    reds, _ = trained_pair
    model_id = (await create_model(client, api_key, name="imported for predictions"))["id"]
    imported = (await _import(client, api_key, model_id, files["other"])).json()["importedAdapter"]
    configs = {
        "1": {"modelId": model_id, "trainingId": imported["importId"], "scale": 0.6},
        "2": {"modelId": reds.model_id, "trainingId": reds.training_id, "scale": 0.4},
    }
    body = {"scaleConfigs": configs, "prompt": "a dress", "seed": 11, "num_inference_steps": 4}
    body["image_size"] = {"width": 512, "height": 512}
    response = await client.post("/v1/predictions", json=body, headers=bearer(api_key))
    assert response.status_code == 202, response.text
    prediction_id = response.json()["predictionId"]

    async def probe() -> dict:
        return (await client.get(f"/v1/predictions/{prediction_id}", headers=bearer(api_key))).json()

    view = await eventually(
        probe, lambda v: v["status"] in ("succeeded", "failed", "canceled"), timeout_s=300, what="prediction"
    )
    assert view["status"] == "succeeded", view
    assert [(a["modelId"], a["trainingId"]) for a in view["adapters"]] == [
        (model_id, imported["importId"]),
        (reds.model_id, reds.training_id),
    ]
