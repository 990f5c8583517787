"""Clients written against one seed document work unchanged (issue 12's conformance findings)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from functions.api.app import create_app
from tests.journeys import QUICK, create_model, png, train_model, upload
from tests.support import bearer, eventually, wait_for_job

pytestmark = pytest.mark.integration

# Seed 003's `PUT /models/{modelId}` with every kind of parameter it documents for SD 1.5 LoRAs: applied ones,
# aliases (learningRateUnet, validationPrompt; seed 000's `steps`) and ones it marks legacy or not applicable.
SEED003_UPDATE = {
    "name": "Cinematic Realism",
    "shortDescription": "This model generates highly detailed cinematic scenes.",
    "type": "sd-1_5-lora",
    "parameters": {
        "learningRateUnet": 0.0001,
        "steps": 6,
        "nbEpochs": 2,
        "rank": 4,
        "seed": 7,
        "lrScheduler": "constant",
        "randomCrop": True,
        "samplePrompts": ["a cinematic street at night"],
        "validationPrompt": "a cinematic portrait",
        "validationFrequency": 0,
        "scaleLr": True,
        "wandbKey": "wandb-secret-0123456789abcdef",
        "numTextTrainSteps": 0,
        "numUNetTrainSteps": 0,
    },
}
CANONICAL = {
    "learningRate": 0.0001,
    "maxTrainSteps": 6,
    "nbEpochs": 2,
    "rank": 4,
    "seed": 7,
    "lrScheduler": "constant",
    "randomCrop": True,
    "samplePrompts": ["a cinematic street at night", "a cinematic portrait"],
}
DROPPED = {"learningRateUnet", "steps", "validationPrompt", "validationFrequency", "scaleLr", "wandbKey"}
DROPPED |= {"numTextTrainSteps", "numUNetTrainSteps"}


async def test_seed003_update_stores_canonical_parameters_and_the_next_training_runs(client, api_key, context) -> None:
    model_id = (await create_model(client, api_key, name="seed 003 client"))["id"]
    await upload(client, api_key, model_id, png((120, 80, 40)))

    updated = await client.put(f"/v1/models/{model_id}", json=SEED003_UPDATE, headers=bearer(api_key))
    assert updated.status_code == 200, updated.text
    assert updated.json()["model"]["parameters"] == CANONICAL
    assert "wandb-secret" not in updated.text, "the Weights & Biases key is a secret: never echoed"
    stored = await context.models.get_live("tenant-a", model_id)
    assert stored is not None
    assert stored.parameters == CANONICAL and not DROPPED & set(stored.parameters)

    started = await client.post(f"/v1/models/{model_id}/trainings", json={}, headers=bearer(api_key))
    assert started.status_code == 202, started.text
    training_id = started.json()["trainingId"]
    view = (await client.get(f"/v1/models/{model_id}/trainings/{training_id}", headers=bearer(api_key))).json()
    assert view["status"] in ("starting", "processing")
    assert {name: view["parameters"][name] for name in CANONICAL} == CANONICAL
    # Nothing here consumes trainings: cancel it rather than leave it for a later test's trainer.
    canceled = await client.post(f"/v1/models/{model_id}/trainings/{training_id}/cancel", headers=bearer(api_key))
    assert canceled.status_code == 202, canceled.text


async def test_seed003_aliases_sent_on_create_are_stored_canonically(client, api_key) -> None:
    created = await client.post(
        "/v1/models", json={"name": "aliases", "parameters": SEED003_UPDATE["parameters"]}, headers=bearer(api_key)
    )
    assert created.status_code == 201, created.text
    model_id = created.json()["id"]
    detail = (await client.put(f"/v1/models/{model_id}", json={}, headers=bearer(api_key))).json()["model"]
    assert detail["parameters"] == CANONICAL


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_seed001_rename_works_through_put_and_patch(client, api_key, method: str) -> None:
    model_id = (await create_model(client, api_key, displayName="Summer Collection Style Model"))["id"]
    # Seed 001's documented body, verbatim.
    response = await client.request(
        method,
        f"/v1/models/{model_id}",
        json={"updatedDisplayName": "Summer Dresses Style Model"},
        headers=bearer(api_key),
    )
    assert response.status_code == 200, response.text
    view = (await client.get(f"/v1/models/{model_id}", headers=bearer(api_key))).json()
    assert view["displayName"] == view["name"] == "Summer Dresses Style Model"
    conflict = await client.request(
        method,
        f"/v1/models/{model_id}",
        json={"updatedDisplayName": "One", "name": "Another"},
        headers=bearer(api_key),
    )
    assert conflict.status_code == 422, conflict.text
    blank = await client.request(
        method, f"/v1/models/{model_id}", json={"updatedDisplayName": "  "}, headers=bearer(api_key)
    )
    assert blank.status_code == 422 and blank.json()["error"]["field"] == "body"


async def _completed(client: httpx.AsyncClient, key: str, response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    view = await wait_for_job(client, response.json()["jobId"], bearer(key))
    assert view["status"] == "completed", view
    return view


async def test_a_soft_deleted_training_leaves_the_listings_and_its_adapter_keeps_serving(
    client, api_key, worker, trainer
) -> None:
    model_id, training_id = await train_model(client, api_key, "kept adapter", ((30, 200, 30),), QUICK)
    deleted = await client.delete(f"/v1/models/{model_id}/trainings/{training_id}", headers=bearer(api_key))
    assert deleted.status_code == 204, deleted.text
    listed = (await client.get(f"/v1/models/{model_id}/trainings", headers=bearer(api_key))).json()
    assert training_id not in [t["id"] for t in listed]

    # A seed 001 prediction naming the deleted training.
    prediction = await client.post(
        "/v1/predictions",
        json={
            "scaleConfigs": {"1": {"scale": 0.8, "modelId": model_id, "trainingId": training_id}},
            "prompt": "A summer dress with floral pattern",
            "num_inference_steps": 2,
        },
        headers=bearer(api_key),
    )
    assert prediction.status_code == 202, prediction.text

    async def probe() -> dict[str, Any]:
        path = f"/v1/predictions/{prediction.json()['predictionId']}"
        return (await client.get(path, headers=bearer(api_key))).json()

    predicted = await eventually(probe, lambda v: v["status"] in ("succeeded", "failed"), what="prediction")
    assert predicted["status"] == "succeeded", predicted
    assert predicted["adapters"][0]["trainingId"] == training_id

    # A seed 002 generation with the model, and a seed 003 composition of it.
    generation = {"prompt": "a dress", "width": 64, "height": 64, "numInferenceSteps": 2}
    generated = await client.post(
        "/v1/images/generate", json={"modelId": model_id, **generation}, headers=bearer(api_key)
    )
    assert (await _completed(client, api_key, generated))["adapters"][0]["modelId"] == model_id
    mix = await create_model(client, api_key, name="mix", type="sd-1_5-composition")
    concepts = {"concepts": [{"modelId": model_id, "scale": 0.7}]}
    assert (await client.put(f"/v1/models/{mix['id']}", json=concepts, headers=bearer(api_key))).status_code == 200
    composed = await client.post(
        "/v1/images/generate", json={"modelId": mix["id"], **generation}, headers=bearer(api_key)
    )
    assert (await _completed(client, api_key, composed))["adapters"][0]["modelId"] == model_id


# Seed 000's create body, verbatim: its base model belongs to another service.
SEED000_CREATE = {
    "name": "My Custom Model",
    "description": "A model specialized for cyberpunk aesthetics",
    "baseModel": "realm-base-v2.1",
    "tags": ["cyberpunk", "female", "photorealistic"],
}


async def test_an_unknown_base_model_is_refused_with_the_ones_this_deployment_has(bootstrapped, api_key) -> None:
    # The session's operator aliases realm-base-v2.1; this one does not.
    app = create_app(bootstrapped.model_copy(update={"base_model_aliases": {}}))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as plain:
            response = await plain.post("/v1/models", json=SEED000_CREATE, headers=bearer(api_key))
            catalog = await plain.get("/v1/base-models", headers=bearer(api_key))
    finally:
        if app.state.context is not None:
            await app.state.context.close()
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("unknown_base_model", "baseModel")
    assert error["baseModels"] == ["broken", "tiny-flux", "tiny-sd", "tiny-sdxl", "tiny-shapes"]
    assert "broken, tiny-flux, tiny-sd, tiny-sdxl" in error["message"] and "GET /v1/base-models" in error["message"]
    assert catalog.status_code == 200 and [m["name"] for m in catalog.json()["data"]] == error["baseModels"]


async def test_base_models_are_listed_with_sizes_capabilities_and_aliases(client, api_key) -> None:
    response = await client.get("/v1/base-models", headers=bearer(api_key))
    assert response.status_code == 200, response.text
    models = {m["name"]: m for m in response.json()["data"]}
    assert set(models) == {"broken", "tiny-sd", "tiny-sdxl", "tiny-flux", "tiny-shapes"}, (
        "an alias is listed under its model"
    )
    assert models["tiny-sd"] == {
        "name": "tiny-sd",
        "aliases": ["realm-base-v2.1"],
        "family": "sd-1_5",
        "type": "sd-1_5-lora",
        "default": True,
        "defaultSize": {"width": 64, "height": 64},
        "maxSize": {"width": 1536, "height": 1536},
        "defaultSteps": 10,
        "defaultGuidanceScale": 7.5,
        "sizeMultiple": 8,
        "capabilities": ["text-to-image", "image-to-image", "inpainting", "training"],
        "scenarioCapabilities": ["txt2img", "img2img", "inpaint", "training"],
        "modelTypes": ["sd-1_5-lora", "sd-1_5-composition"],
    }
    families = {name: (m["family"], m["type"], m["sizeMultiple"]) for name, m in models.items()}
    assert families["tiny-sdxl"] == ("sd-xl", "sd-xl-lora", 8)
    assert families["tiny-flux"] == ("flux.1", "flux.1-lora", 16)
    assert models["tiny-flux"]["scenarioCapabilities"] == ["txt2img", "img2img", "inpaint", "training"]
    assert models["broken"]["default"] is False and models["broken"]["defaultSize"] == {"width": 512, "height": 512}
    assert (await client.get("/v1/base-models")).status_code == 401
    # With the alias, seed 000's body works unchanged.
    created = await client.post("/v1/models", json=SEED000_CREATE, headers=bearer(api_key))
    assert created.status_code == 201 and created.json()["baseModel"] == "tiny-sd"
