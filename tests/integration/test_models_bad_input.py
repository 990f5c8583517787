"""Bad input on the model, training-data and training endpoints: always a 4xx with a clear message."""

from __future__ import annotations

import time

import pytest

from infra.signing import signed_headers
from tests.conftest import SIGNING_SECRET
from tests.journeys import create_model, png, upload
from tests.support import bearer

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "a", "displayName": "b"}, "body"),
        ({"name": "x" * 201}, "name"),
        ({"name": "ok", "tags": "not-a-list"}, "tags"),
        ({"name": "ok", "tags": [" "]}, "tags"),
        ({"name": "ok", "baseModel": "no-such-model"}, "baseModel"),
        ({"name": "ok", "type": "elevenlabs-voice"}, "type"),
        ({"name": "ok", "type": "sd-xl-lora"}, "type"),
        ({"name": "ok", "parameters": {"age": "30"}}, "parameters"),
        ({"name": "ok", "unknown": 1}, "unknown"),
    ],
)
async def test_create_model_refuses(client, api_key, body, field):
    response = await client.post("/v1/models", json=body, headers=bearer(api_key))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"].startswith(field) and error["message"]


async def test_malformed_and_unauthenticated_model_requests(client, api_key):
    response = await client.post(
        "/v1/models", content=b"{not json", headers={**bearer(api_key), "Content-Type": "application/json"}
    )
    assert response.status_code == 422 and response.json()["error"]["field"] == "body"
    assert (await client.post("/v1/models", json={"name": "x"})).status_code == 401
    big = await client.post("/v1/models", json={"name": "x", "description": "y" * 2_000_000}, headers=bearer(api_key))
    assert big.status_code == 413
    listing = await client.get("/v1/models", params={"limit": 0}, headers=bearer(api_key))
    assert listing.status_code == 422 and listing.json()["error"]["field"] == "limit"
    listing = await client.get("/v1/models", params={"status": "bogus"}, headers=bearer(api_key))
    assert listing.status_code == 422 and listing.json()["error"]["field"] == "status"


async def test_other_tenants_models_do_not_exist(client, api_key, other_api_key):
    model = await create_model(client, api_key, name="private")
    model_id = model["modelId"]
    data = await upload(client, api_key, model_id, png((10, 10, 10)))
    other = bearer(other_api_key)
    for method, path, kwargs in [
        ("GET", f"/v1/models/{model_id}", {}),
        ("PUT", f"/v1/models/{model_id}", {"json": {"name": "stolen"}}),
        ("PATCH", f"/v1/models/{model_id}", {"json": {"updatedDisplayName": "stolen"}}),
        ("GET", f"/v1/models/{model_id}/training-data", {}),
        ("GET", f"/v1/models/{model_id}/training-data/{data['dataId']}", {}),
        ("DELETE", f"/v1/models/{model_id}/training-data/{data['dataId']}", {}),
        ("POST", f"/v1/models/{model_id}/training-data", {"content": png((1, 2, 3))}),
        ("POST", f"/v1/models/{model_id}/trainings", {"json": {}}),
        ("GET", f"/v1/models/{model_id}/trainings", {}),
    ]:
        response = await client.request(method, path, headers=other, **kwargs)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"]["code"] == "model_not_found"
    listing = (await client.get("/v1/models", params={"limit": 100}, headers=other)).json()
    assert model_id not in [m["modelId"] for m in listing["data"]]


async def test_training_images_are_checked_from_their_bytes(client, api_key):
    model = await create_model(client, api_key, name="images")
    path = f"/v1/models/{model['modelId']}/training-data"
    full = png((50, 60, 70), size=(256, 256))
    cases = [
        (b"", 400, "empty_body"),
        (b"GIF89a" + b"\0" * 100, 415, "unsupported_image_format"),
        (b"--boundary\r\nContent-Disposition: form-data", 415, "unsupported_image_format"),
        (full[: len(full) // 2], 422, "corrupt_image"),
        (png((1, 1, 1), size=(8, 8)), 422, "image_too_small"),
        (b"\x89PNG\r\n\x1a\n" + b"\0" * (11 * 1024 * 1024), 413, "payload_too_large"),
    ]
    for data, status, code in cases:
        response = await client.post(path, content=data, headers={**bearer(api_key), "Content-Type": "image/png"})
        assert response.status_code == status, (code, response.text)
        assert response.json()["error"]["code"] == code
    # A webp declared as jpeg is fine: the bytes decide.
    webp = png((5, 200, 5), fmt="WEBP")
    ok = await client.post(path, content=webp, headers={**bearer(api_key), "Content-Type": "image/jpeg"})
    assert ok.status_code == 201 and ok.json()["format"] == "webp"
    assert len((await client.get(path, headers=bearer(api_key))).json()) == 1  # nothing else was stored


async def test_training_preconditions(client, api_key):
    empty = await create_model(client, api_key, name="no images")
    response = await client.post(f"/v1/models/{empty['modelId']}/trainings", json={}, headers=bearer(api_key))
    assert response.status_code == 409 and response.json()["error"]["code"] == "no_training_data"
    for body, field in [
        ({"trainingStrength": 11}, "trainingStrength"),
        ({"trainingSpeed": "slow"}, "trainingSpeed"),
        ({"parameters": {"maxTrainSteps": 40_001}}, "parameters.maxTrainSteps"),
        ({"parameters": {"lrScheduler": "sometimes"}}, "parameters.lrScheduler"),
    ]:
        response = await client.post(f"/v1/models/{empty['modelId']}/trainings", json=body, headers=bearer(api_key))
        assert response.status_code == 422 and response.json()["error"]["field"] == field, response.text
    await upload(client, api_key, empty["modelId"], png((9, 9, 9)))
    bad = await client.post(
        f"/v1/models/{empty['modelId']}/trainings",
        json={"parameters": {"maxTrainSteps": 2, "nbEpochs": 5}},
        headers=bearer(api_key),
    )
    assert bad.status_code == 422 and "nbEpochs" in bad.json()["error"]["message"]
    unknown = await client.get(f"/v1/models/{empty['modelId']}/trainings/trn_nope", headers=bearer(api_key))
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "training_not_found"
    multipart = await client.post(
        f"/v1/models/{empty['modelId']}/train", data={"trainingParams": "{oops"}, headers=bearer(api_key)
    )
    assert multipart.status_code == 422 and multipart.json()["error"]["field"] == "trainingParams"


async def test_delete_needs_a_fresh_unreplayed_signature(client, api_key):
    model = await create_model(client, api_key, name="to delete")
    path = f"/v1/models/{model['modelId']}"
    unsigned = await client.delete(path, headers=bearer(api_key))
    assert unsigned.status_code == 401 and unsigned.json()["error"]["code"] == "signature_required"
    stale = signed_headers(SIGNING_SECRET, "DELETE", path, int(time.time()) - 3600)
    response = await client.delete(path, headers={**bearer(api_key), **stale})
    assert response.status_code == 401 and response.json()["error"]["code"] == "signature_expired"
    forged = signed_headers("lfs_wrong", "DELETE", path, int(time.time()))
    response = await client.delete(path, headers={**bearer(api_key), **forged})
    assert response.status_code == 401 and response.json()["error"]["code"] == "invalid_signature"

    good = signed_headers(SIGNING_SECRET, "DELETE", path, int(time.time()))
    assert (await client.delete(path, headers={**bearer(api_key), **good})).status_code == 204
    replay = await client.delete(path, headers={**bearer(api_key), **good})
    assert replay.status_code == 401 and replay.json()["error"]["code"] == "signature_replayed"
    assert (await client.get(path, headers=bearer(api_key))).status_code == 404
    # Deleted is deleted: no training, no uploads.
    response = await client.post(f"{path}/training-data", content=png((1, 1, 1)), headers=bearer(api_key))
    assert response.status_code == 404
