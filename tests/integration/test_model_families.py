"""SDXL and FLUX models through the API with seed 003's bodies: create on the family's base, PUT its type and
parameters, give the images captions, train to `trained`, generate with the model and with a composition of it.

Runs on the session's moto server and Tansu broker with a real trainer and generator on tiny-sdxl and tiny-flux.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from events.records.jobs import TrainingJob
from tests.journeys import create_model, png, upload, wait_for_training
from tests.support import bearer, wait_for_job

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("worker", "trainer")]

COLORS = ((220, 30, 30), (200, 50, 20))
# Seed 003's PUT bodies, at sizes a CPU trains in seconds (2 images: 4 steps, 2 epochs, no epoch samples: on a
# loaded 2-core machine a FLUX sample costs more than its 4 training steps).
FAMILIES: dict[str, dict[str, Any]] = {
    "tiny-sdxl": {
        "family": "sd-xl",
        "other_type": "flux.1-lora",
        "parameters": {
            "numTextTrainSteps": 2,
            "numUNetTrainSteps": 2,
            "learningRateUnet": 0.001,
            "learningRateTextEncoder": 0.0001,
            "rank": 4,
            "nbEpochs": 2,
            "seed": 7,
            "samplePrompts": [],
        },
        "expected": {"maxTrainSteps": 4, "numTextTrainSteps": 2, "nbEpochs": 2, "rank": 4, "learningRate": 0.001},
    },
    "tiny-flux": {
        "family": "flux.1",
        "other_type": "sd-xl-lora",
        "parameters": {
            "rank": 4,
            "nbEpochs": 2,
            "nbRepeats": 1,
            "optimizeFor": "all",
            "learningRate": 0.001,
            "samplePrompts": [],
        },
        "expected": {"maxTrainSteps": 4, "nbEpochs": 2, "rank": 4, "optimizeFor": "all"},
    },
}


SECOND_CAPTION = "[trigger] folded on a chair"


async def train_with_sidecar(client: httpx.AsyncClient, key: str, model_id: str) -> str:
    """Seed 000's `POST /models/{id}/train` with an image and its caption sidecar; returns the training id. A
    sidecar that is not UTF-8 text is a 422 naming it, and nothing is stored."""
    url = f"/v1/models/{model_id}/train"
    bad = [("images[]", ("cat.png", png(COLORS[1]), "image/png")), ("images[]", ("cat.txt", b"\xff\xfe", "text/plain"))]
    refused = await client.post(url, files=bad, headers=bearer(key))
    assert refused.status_code == 422 and "cat.txt" in refused.json()["error"]["message"], refused.text
    files = [
        ("images[]", ("cat.png", png(COLORS[1]), "image/png")),
        ("images[]", ("cat.txt", f"{SECOND_CAPTION}\n".encode(), "text/plain")),
    ]
    started = await client.post(url, files=files, headers=bearer(key))
    assert started.status_code == 202, started.text
    assert len(started.json()["dataIds"]) == 1, "the sidecar is a caption, not an image"
    return started.json()["trainingId"]


async def generate(client: httpx.AsyncClient, key: str, model_id: str, **sizes: int) -> httpx.Response:
    body = {"modelId": model_id, "prompt": "a red dress", "numInferenceSteps": 4, "seed": 3, **sizes}
    return await client.post("/v1/images/generate", json=body, headers=bearer(key))


async def generated(client: httpx.AsyncClient, key: str, model_id: str) -> dict[str, Any]:
    response = await generate(client, key, model_id, width=64, height=64)
    assert response.status_code == 202, response.text
    view = await wait_for_job(client, response.json()["jobId"], bearer(key))
    assert view["status"] == "completed", view
    return view


@pytest.mark.parametrize("base", sorted(FAMILIES))
async def test_a_family_model_trains_generates_and_composes(client, api_key, context, base: str) -> None:
    case = FAMILIES[base]
    family = case["family"]
    created = await create_model(client, api_key, name=f"{family} model", baseModel=base)
    model_id = created["id"]
    assert (created["type"], created["family"]) == (f"{family}-lora", family)
    assert created["capabilities"] == ["txt2img", "img2img", "inpaint", "training"]
    assert created["sizes"]["multiple"] == (16 if family == "flux.1" else 8)

    # The refused case: another family's type on this base.
    wrong = await client.put(f"/v1/models/{model_id}", json={"type": case["other_type"]}, headers=bearer(api_key))
    assert wrong.status_code == 422, wrong.text
    assert (wrong.json()["error"]["code"], wrong.json()["error"]["field"]) == ("incompatible_model_type", "type")

    if family == "flux.1":
        ranked = await client.put(f"/v1/models/{model_id}", json={"parameters": {"rank": 65}}, headers=bearer(api_key))
        assert ranked.status_code == 422 and ranked.json()["error"]["field"] == "parameters.rank", ranked.text

    update = {"type": f"{family}-lora", "parameters": case["parameters"]}
    put = await client.put(f"/v1/models/{model_id}", json=update, headers=bearer(api_key))
    assert put.status_code == 200, put.text

    # Captions: one at upload (the raw upload's `description`); the other by PATCH (FLUX), or as the .txt sidecar of
    # seed 000's multipart train (SDXL), which then starts the training on the model's stored parameters.
    first = await client.post(
        f"/v1/models/{model_id}/training-data",
        params={"description": "a red dress on a hanger"},
        content=png(COLORS[0]),
        headers={**bearer(api_key), "Content-Type": "application/octet-stream"},
    )
    assert first.status_code == 201, first.text
    if family == "sd-xl":
        training_id = await train_with_sidecar(client, api_key, model_id)
    else:
        second = await upload(client, api_key, model_id, png(COLORS[1]))
        patched = await client.patch(
            f"/v1/models/{model_id}/training-data/{second['dataId']}",
            json={"description": SECOND_CAPTION},
            headers=bearer(api_key),
        )
        assert patched.status_code == 200 and patched.json()["description"] == SECOND_CAPTION
        started = await client.post(f"/v1/models/{model_id}/trainings", headers=bearer(api_key))
        assert started.status_code == 202, started.text
        training_id = started.json()["trainingId"]
    detail = (await client.put(f"/v1/models/{model_id}", json={}, headers=bearer(api_key))).json()["model"]
    images = [(i["description"], i["automaticCaptioning"]) for i in detail["trainingImages"]]
    assert images == [("a red dress on a hanger", ""), (SECOND_CAPTION, "")]

    record = await context.jobs.get_as(training_id, TrainingJob)
    assert record is not None
    trigger = record.request.triggerWord
    # The second caption places the word, so the set's captions train as written (regularisation pictures' way).
    assert record.request.captions == ["a red dress on a hanger", f"{trigger} folded on a chair"]
    applied = record.request.parameters.model_dump()
    assert {name: applied[name] for name in case["expected"]} == case["expected"]
    done = await wait_for_training(client, api_key, model_id, training_id, ("succeeded", "failed"))
    assert done["status"] == "succeeded", done

    view = await generated(client, api_key, model_id)
    assert view["adapters"][0]["modelId"] == model_id
    if family == "flux.1":
        odd = await generate(client, api_key, model_id, width=72, height=64)
        assert odd.status_code == 422 and odd.json()["error"]["field"] == "width", odd.text

    mix = await create_model(client, api_key, name="mix", type=f"{family}-composition", baseModel=base)
    assert "training" not in mix["capabilities"]
    concepts = {"concepts": [{"modelId": model_id, "scale": 0.7}]}
    composed = await client.put(f"/v1/models/{mix['id']}", json=concepts, headers=bearer(api_key))
    assert composed.status_code == 200, composed.text
    mixed = await generated(client, api_key, mix["id"])
    assert [(a["modelId"], a["scale"]) for a in mixed["adapters"]] == [(model_id, 0.7)]
