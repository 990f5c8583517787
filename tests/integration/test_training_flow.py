"""Models, training data and trainings end to end: API -> Kafka -> trainer -> S3 -> notifications -> API.

Runs against the session's moto server and Tansu broker, with a real trainer worker on tiny-sd.
"""

from __future__ import annotations

import base64
import io
import json

import pytest
from PIL import Image
from safetensors.torch import load as load_safetensors

from events.records.jobs import TrainingJob
from events.topics import JOB_LIFECYCLE
from tests.journeys import QUICK, create_model, png, upload, wait_for_training
from tests.support import bearer, read_topic

pytestmark = pytest.mark.integration


async def test_seed001_journey_trains_an_adapter_diffusers_can_load(client, api_key, trainer, context, bootstrapped):
    # Seed 001: create with displayName, upload raw images, train with its documented body.
    model = await create_model(client, api_key, displayName="Summer Collection Style Model")
    assert model["displayName"] == "Summer Collection Style Model" and model["id"] == model["modelId"]
    assert model["id"].startswith("mod_") and model["status"] == "pending_training"
    model_id = model["id"]
    uploaded = [await upload(client, api_key, model_id, png(c)) for c in ((200, 30, 30), (190, 40, 20))]
    assert all(u["dataId"].startswith("dat_") for u in uploaded)

    listed = (await client.get(f"/v1/models/{model_id}/training-data", headers=bearer(api_key))).json()
    assert [i["dataId"] for i in listed] == [u["dataId"] for u in uploaded]
    one = await client.get(f"/v1/models/{model_id}/training-data/{uploaded[0]['dataId']}", headers=bearer(api_key))
    data_url = one.json()["dataUrl"]
    assert data_url.startswith("data:image/png;base64,")
    assert Image.open(io.BytesIO(base64.b64decode(data_url.split(",", 1)[1]))).size == (64, 64)

    # The seed's body verbatim, plus quick parameters so the test takes seconds.
    response = await client.post(
        f"/v1/models/{model_id}/trainings",
        json={"trainingStrength": 7, "trainingSpeed": "high_quality", "parameters": QUICK},
        headers=bearer(api_key),
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    training_id = accepted["trainingId"]
    assert len(accepted["triggerWord"]) == 7 and accepted["status"] == "starting"

    done = await wait_for_training(client, api_key, model_id, training_id, ("succeeded", "failed", "canceled"))
    assert done["status"] == "succeeded", done
    assert done["triggerWord"] == accepted["triggerWord"]
    assert [e["epoch"] for e in done["epochs"]] == ["000001", "000002"]
    assert [e["step"] for e in done["epochs"]] == [3, 6]
    assert all(len(e["sampleUrls"]) == 1 for e in done["epochs"])

    trainings = (await client.get(f"/v1/models/{model_id}/trainings", headers=bearer(api_key))).json()
    assert trainings[0] == {"id": training_id, "status": "succeeded", "createdAt": trainings[0]["createdAt"]}

    # The model is trained: seed 000 says active, seed 003 says trained.
    view = (await client.get(f"/v1/models/{model_id}", headers=bearer(api_key))).json()
    assert view["status"] == "active" and view["lastTrainedAt"] and view["trainingImagesNumber"] == 2
    record = await context.jobs.get_as(training_id, TrainingJob)
    assert record is not None and record.adapterKey is not None
    adapter = await context.store.get_bytes(record.adapterKey)
    tensors = load_safetensors(adapter)
    assert tensors and all(k.startswith("unet.") for k in tensors)

    # Exactly one final adapter, and one checkpoint per epoch.
    keys = await context.store.list_keys(f"trainings/{training_id}/")
    assert sum(k.endswith("adapter.safetensors") and "/checkpoints/" not in k for k in keys) == 1
    assert sum(k.endswith("epoch.json") for k in keys) == 2

    status_types = ("ai.lorafoundry.job.started.v1", "ai.lorafoundry.job.succeeded.v1")
    events = await read_topic(
        bootstrapped,
        JOB_LIFECYCLE,
        lambda r: json.loads(r.value)["subject"] == training_id and json.loads(r.value)["type"] in status_types,
        count=2,
    )
    types = [json.loads(r.value)["type"] for r in events]
    assert types == list(status_types)
    assert json.loads(events[1].value)["data"]["outputs"] == [record.adapterKey]
    # Between them, the training's checkpoints (and progress) were announced too.
    checkpoints = await read_topic(
        bootstrapped,
        JOB_LIFECYCLE,
        lambda r: (
            json.loads(r.value)["subject"] == training_id
            and json.loads(r.value)["type"] == "ai.lorafoundry.job.checkpoint.v1"
        ),
        count=2,
    )
    assert sorted(json.loads(r.value)["data"]["epoch"] for r in checkpoints) == ["000001", "000002"]


async def test_seed000_create_and_train_in_one_multipart_call(client, api_key, trainer):
    body = {
        "name": "My Custom Model",
        "description": "A model specialized for cyberpunk aesthetics",
        "baseModel": "realm-base-v2.1",
        "tags": ["cyberpunk", "female", "photorealistic"],
    }
    created = await create_model(client, api_key, **body)
    for name in ("name", "description", "tags"):
        assert created[name] == body[name]
    assert created["status"] == "pending_training" and created["modelId"].startswith("mod_")
    assert created["createdAt"]

    files = [("images[]", (f"img{i}.jpg", png((20, 20, 200), fmt="JPEG"), "image/jpeg")) for i in range(2)]
    params = {**QUICK, "steps": 4}
    params.pop("maxTrainSteps")
    response = await client.post(
        f"/v1/models/{created['modelId']}/train",
        files=files,
        data={"trainingParams": json.dumps(params)},
        headers=bearer(api_key),
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["modelId"] == created["modelId"] and accepted["status"] == "training_queued"
    assert accepted["trainingJobId"].startswith("trn_") and accepted["estimatedCompletion"]
    assert len(accepted["dataIds"]) == 2

    training = await wait_for_training(
        client, api_key, created["modelId"], accepted["trainingJobId"], ("succeeded", "failed")
    )
    assert training["status"] == "succeeded", training
    assert training["parameters"]["maxTrainSteps"] == 4  # seed 000's `steps`
    view = (await client.get(f"/v1/models/{created['modelId']}", headers=bearer(api_key))).json()
    assert view["status"] == "active" and view["baseModel"] == "tiny-sd"

    listing = await client.get("/v1/models", params={"status": "active", "limit": 100}, headers=bearer(api_key))
    assert created["modelId"] in [m["modelId"] for m in listing.json()["data"]]


async def test_seed003_update_then_train_reports_progress_stats_and_epochs(client, api_key, trainer):
    model = await create_model(client, api_key, name="Cinematic Realism")
    model_id = model["modelId"]
    await upload(client, api_key, model_id, png((30, 160, 40)))
    update = {
        "name": "Cinematic Realism v2",
        "shortDescription": "This model generates highly detailed cinematic scenes.",
        "tags": ["sci-fi", "landscape"],
        "type": "sd-1_5-lora",
        "parameters": {**QUICK, "lrScheduler": "cosine", "batchSize": 2, "samplePrompts": ["a daiton scene"]},
    }
    response = await client.put(f"/v1/models/{model_id}", json=update, headers=bearer(api_key))
    assert response.status_code == 200, response.text
    detail = response.json()["model"]
    assert detail["id"] == model_id and detail["status"] == "new" and detail["type"] == "sd-1_5-lora"
    assert detail["name"] == update["name"] and detail["shortDescription"] == update["shortDescription"]
    assert detail["parameters"]["lrScheduler"] == "cosine" and detail["trainingImagesNumber"] == 1
    assert detail["capabilities"] == ["txt2img", "img2img", "inpaint", "training"] and detail["privacy"] == "private"
    assert detail["family"] == "sd-1_5" and detail["sizes"]["multiple"] == 8
    assert detail["trainingImages"][0]["downloadUrl"].startswith("http")

    started = await client.post(f"/v1/models/{model_id}/trainings", headers=bearer(api_key))
    assert started.status_code == 202, started.text
    training_id = started.json()["trainingId"]
    done = await wait_for_training(client, api_key, model_id, training_id, ("succeeded", "failed"))
    assert done["status"] == "succeeded", done
    assert done["parameters"]["batchSize"] == 2 and done["parameters"]["samplePrompts"] == ["a daiton scene"]

    # Type is locked once the model has left `new`.
    locked = await client.put(f"/v1/models/{model_id}", json={"type": "sd-1_5-composition"}, headers=bearer(api_key))
    assert locked.status_code == 409 and locked.json()["error"]["field"] == "type"

    detail = (await client.put(f"/v1/models/{model_id}", json={"epoch": "000001"}, headers=bearer(api_key))).json()
    model_view = detail["model"]
    assert model_view["status"] == "trained" and model_view["epoch"] == "000001"
    assert [e["epoch"] for e in model_view["epochs"]] == ["000001", "000002"]
    assert model_view["epochs"][0]["assets"][0]["url"].startswith("http")
    stats = model_view["trainingStats"]
    assert stats["queueDuration"] >= 0 and stats["trainDuration"] > 0 and stats["endedAt"]
    assert model_view["trainingProgress"] is None  # finished

    unknown = await client.put(f"/v1/models/{model_id}", json={"epoch": "000009"}, headers=bearer(api_key))
    assert unknown.status_code == 422 and "000001" in unknown.json()["error"]["message"]
