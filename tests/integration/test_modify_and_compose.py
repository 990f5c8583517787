"""Seed 002 `POST /images/modify` (image-to-image, inpainting) and seed 003 composition models with epochs,
on the embedded stack with trained adapters."""

from __future__ import annotations

import io
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.integration.conftest import TrainedModel
from tests.journeys import create_model, download
from tests.support import bearer, wait_for_job

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("worker", "trainer")]

WIDTH, HEIGHT = 96, 64


def encode(image: Image.Image, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def photo() -> Image.Image:
    rng = np.random.default_rng(4)
    return Image.fromarray(rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8))


def left_half_mask(size: tuple[int, int] = (WIDTH, HEIGHT)) -> Image.Image:
    mask = np.zeros((size[1], size[0]), dtype=np.uint8)
    mask[:, : size[0] // 2] = 255
    return Image.fromarray(mask)


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


async def modify(
    client: httpx.AsyncClient,
    key: str,
    fields: dict[str, Any],
    image: bytes | None,
    mask: bytes | None = None,
) -> httpx.Response:
    files: dict[str, Any] = {}
    if image is not None:
        files["image"] = ("photo.png", image, "image/png")
    if mask is not None:
        files["mask"] = ("mask.png", mask, "image/png")
    return await client.post("/v1/images/modify", data=fields, files=files or None, headers=bearer(key))


async def completed(client: httpx.AsyncClient, key: str, response: httpx.Response) -> tuple[dict, list[bytes]]:
    assert response.status_code == 202, response.text
    view = await wait_for_job(client, response.json()["jobId"], bearer(key))
    assert view["status"] == "completed", view
    return view, [await download(image["url"]) for image in view["images"]]


async def test_inpainting_changes_only_the_masked_area(client, api_key, trained_pair) -> None:
    reds, _ = trained_pair
    original = photo()
    fields = {"modelId": reds.model_id, "prompt": "a red dress", "seed": "3", "numInferenceSteps": "6"}
    view, images = await completed(
        client, api_key, await modify(client, api_key, fields, encode(original), encode(left_half_mask()))
    )
    assert view["type"] == "inpainting" and view["parameters"]["strength"] == 1.0
    assert view["adapters"][0]["modelId"] == reds.model_id
    out, before = pixels(images[0]), np.asarray(original, dtype=np.int16)
    assert out.shape == before.shape
    # The worker pastes the unmasked area back from the input, so in a PNG it is identical: tolerance 0.
    assert np.array_equal(out[:, WIDTH // 2 :], before[:, WIDTH // 2 :])
    assert np.abs(out[:, : WIDTH // 2] - before[:, : WIDTH // 2]).mean() > 20, "the masked area did not change"


async def test_image_to_image_follows_strength(client, api_key, trained_pair) -> None:
    reds, _ = trained_pair
    original = encode(photo(), "JPEG")
    base = {"modelId": reds.model_id, "prompt": "a red dress", "seed": "3", "numInferenceSteps": "6"}
    outputs = {}
    for strength in ("0", "0.5"):
        view, images = await completed(
            client, api_key, await modify(client, api_key, {**base, "strength": strength}, original)
        )
        assert view["type"] == "image-to-image" and view["parameters"]["strength"] == float(strength)
        assert (view["parameters"]["width"], view["parameters"]["height"]) == (WIDTH, HEIGHT)
        outputs[strength] = pixels(images[0])
    # Strength 0 runs no denoising step: the input comes back (as decoded from its JPEG).
    assert np.array_equal(outputs["0"], np.asarray(Image.open(io.BytesIO(original)).convert("RGB"), dtype=np.int16))
    assert not np.array_equal(outputs["0"], outputs["0.5"])


async def test_seed_002_documented_modify_fields_verbatim(client, api_key, trained_pair) -> None:
    reds, _ = trained_pair
    fields = {
        "modelId": reds.model_id,
        "prompt": "Change the jacket to red leather",
        "strength": "0.75",
        "negativePrompt": "low quality, blurry",
        "guidanceScale": "7.5",
        "numOutputs": "2",
    }
    view, images = await completed(
        client, api_key, await modify(client, api_key, fields, encode(photo(), "JPEG"), encode(left_half_mask()))
    )
    assert len(images) == 2 and view["parameters"]["negativePrompt"] == "low quality, blurry"


async def test_an_odd_sized_image_is_fitted_and_the_mask_follows(client, api_key) -> None:
    odd = photo().resize((101, 70))
    response = await modify(
        client,
        api_key,
        {"modelId": "tiny-sd", "prompt": "p", "numInferenceSteps": "2"},
        encode(odd),
        encode(left_half_mask((101, 70))),
    )
    view, images = await completed(client, api_key, response)
    assert (view["parameters"]["width"], view["parameters"]["height"]) == (96, 64)
    assert pixels(images[0]).shape == (64, 96, 3)


@pytest.mark.parametrize(
    ("fields", "image", "mask", "status", "field"),
    [
        ({}, b"not an image at all", None, 415, "image"),
        ({}, "photo", b"GIF89a not a mask", 415, "mask"),
        ({}, "photo", "small-mask", 422, "mask"),
        ({}, "photo", "black-mask", 422, "mask"),
        ({}, None, None, 422, "body"),  # "send the input image as the `image` file or as an `imageKey`"
        ({"strength": "1.5"}, "photo", None, 422, "strength"),
        ({"strength": "lots"}, "photo", None, 422, "strength"),
        ({"numOutputs": "5"}, "photo", None, 422, "numOutputs"),
        ({"numInferenceSteps": "51"}, "photo", None, 422, "numInferenceSteps"),
        ({"prompt": ""}, "photo", None, 422, "prompt"),
        ({"modelId": "mod_missing"}, "photo", None, 404, "modelId"),
        ({"surprise": "1"}, "photo", None, 422, "surprise"),
    ],
)
async def test_bad_modify_requests_are_4xx_naming_the_field(
    client, api_key, fields: dict[str, str], image: Any, mask: Any, status: int, field: str
) -> None:
    samples = {
        "photo": encode(photo()),
        "small-mask": encode(left_half_mask((WIDTH // 2, HEIGHT // 2))),
        "black-mask": encode(Image.new("L", (WIDTH, HEIGHT))),
    }
    response = await modify(
        client,
        api_key,
        {"modelId": "tiny-sd", "prompt": "p", **fields},
        samples.get(image, image) if image is not None else None,
        samples.get(mask, mask) if mask is not None else None,
    )
    assert response.status_code == status, response.text
    assert response.json()["error"]["field"] == field, response.json()


async def test_modify_refuses_json_another_tenants_model_and_huge_bodies(
    client, api_key, other_api_key, trained_pair
) -> None:
    reds, _ = trained_pair
    as_json = await client.post(
        "/v1/images/modify", json={"modelId": "tiny-sd", "prompt": "p"}, headers=bearer(api_key)
    )
    assert as_json.status_code == 422 and as_json.json()["error"]["message"]
    foreign = await modify(client, other_api_key, {"modelId": reds.model_id, "prompt": "p"}, encode(photo()))
    assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "model_not_found"
    huge = await client.post(
        "/v1/images/modify",
        content=b"x" * (25 * 1024 * 1024),
        headers={**bearer(api_key), "Content-Type": "multipart/form-data; boundary=b"},
    )
    assert huge.status_code == 413


async def _composition(client: httpx.AsyncClient, key: str, concepts: list[dict[str, Any]]) -> str:
    model = await create_model(client, key, name="mix", type="sd-1_5-composition", baseModel="tiny-sd")
    updated = await client.put(f"/v1/models/{model['id']}", json={"concepts": concepts}, headers=bearer(key))
    assert updated.status_code == 200, updated.text
    return model["id"]


async def _generate(client: httpx.AsyncClient, key: str, model_id: str) -> tuple[dict, bytes]:
    response = await client.post(
        "/v1/images/generate",
        json={"modelId": model_id, "prompt": "a dress", "width": 64, "height": 64, "seed": 9},
        headers=bearer(key),
    )
    view, images = await completed(client, key, response)
    return view, images[0]


async def test_a_composition_generates_with_its_concepts_and_their_epochs(
    client, api_key, trained_pair: tuple[TrainedModel, TrainedModel]
) -> None:
    reds, blues = trained_pair
    final = await _composition(
        client, api_key, [{"modelId": reds.model_id, "scale": 0.8}, {"modelId": blues.model_id, "scale": -0.5}]
    )
    view, final_bytes = await _generate(client, api_key, final)
    assert [(a["modelId"], a["scale"], a.get("epoch")) for a in view["adapters"]] == [
        (reds.model_id, 0.8, None),
        (blues.model_id, -0.5, None),
    ]
    early = await _composition(
        client,
        api_key,
        [{"modelId": reds.model_id, "scale": 0.8, "modelEpoch": "000001"}, {"modelId": blues.model_id, "scale": -0.5}],
    )
    view, early_bytes = await _generate(client, api_key, early)
    assert view["adapters"][0]["epoch"] == "000001"
    assert early_bytes != final_bytes, "choosing an epoch changed nothing"


async def test_compositions_that_cannot_run_are_refused(client, api_key) -> None:
    empty = await create_model(client, api_key, name="empty mix", type="sd-1_5-composition", baseModel="tiny-sd")
    response = await client.post(
        "/v1/images/generate", json={"modelId": empty["id"], "prompt": "p"}, headers=bearer(api_key)
    )
    assert response.status_code == 409 and response.json()["error"]["code"] == "composition_without_concepts"

    untrained = await create_model(client, api_key, name="untrained")
    mix = await _composition(client, api_key, [{"modelId": untrained["id"], "scale": 1.0}])
    response = await client.post("/v1/images/generate", json={"modelId": mix, "prompt": "p"}, headers=bearer(api_key))
    assert response.status_code == 409 and response.json()["error"]["field"] == "concepts.0.modelId"


async def test_unknown_epochs_are_refused(client, api_key, trained_pair) -> None:
    reds, _ = trained_pair
    model = await create_model(client, api_key, name="mix", type="sd-1_5-composition", baseModel="tiny-sd")
    response = await client.put(
        f"/v1/models/{model['id']}",
        json={"concepts": [{"modelId": reds.model_id, "scale": 1, "modelEpoch": "000009"}]},
        headers=bearer(api_key),
    )
    assert response.status_code == 422 and response.json()["error"]["code"] == "unknown_epoch"
    assert response.json()["error"]["field"] == "concepts.0.modelEpoch"
    response = await client.put(f"/v1/models/{reds.model_id}", json={"epoch": "000042"}, headers=bearer(api_key))
    assert response.status_code == 422 and response.json()["error"]["code"] == "unknown_epoch"


async def test_big_inputs_can_come_as_upload_keys(client, api_key, other_api_key) -> None:
    async def upload_key(key: str, data: bytes) -> str:
        response = await client.post("/v1/uploads", content=data, headers={**bearer(key), "Content-Type": "image/png"})
        assert response.status_code == 201, response.text
        return response.json()["key"]

    original = photo()
    image_key = await upload_key(api_key, encode(original))
    mask_key = await upload_key(api_key, encode(left_half_mask()))
    fields = {"modelId": "tiny-sd", "prompt": "p", "imageKey": image_key, "maskKey": mask_key, "seed": "1"}
    view, images = await completed(client, api_key, await modify(client, api_key, fields, None))
    assert view["type"] == "inpainting"
    assert np.array_equal(pixels(images[0])[:, WIDTH // 2 :], np.asarray(original, dtype=np.int16)[:, WIDTH // 2 :])

    both = await modify(client, api_key, {**fields, "maskKey": ""}, encode(original))
    assert both.status_code == 422
    foreign = await modify(client, other_api_key, {"modelId": "tiny-sd", "prompt": "p", "imageKey": image_key}, None)
    assert foreign.status_code == 422 and foreign.json()["error"]["field"] == "imageKey"
