"""Seed 004 portraits end to end: photos by URL and upload key, squared with white padding, a LoRA trained,
then each style generated, started by the training's completion event on the lifecycle topic."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator, Iterator

import httpx
import numpy as np
import pytest
from PIL import Image
from standardwebhooks import Webhook

from functions.api.app import create_app
from tests.http_server import LoopbackServer, loopback_server
from tests.journeys import QUICK, create_model, png
from tests.support import bearer, eventually

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("worker", "trainer", "portraits_source")]


def _photo(size: tuple[int, int], color: tuple[int, int, int]) -> bytes:
    rng = np.random.default_rng(sum(color))
    pixels = np.clip(np.array(color) + rng.normal(0, 10, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture
def photos() -> Iterator[LoopbackServer]:
    with loopback_server() as server:
        server.routes["/me-1.jpg"] = (200, {"Content-Type": "image/jpeg"}, _photo((96, 64), (200, 150, 120)))
        server.routes["/me-2.jpg"] = (200, {"Content-Type": "image/jpeg"}, _photo((64, 64), (190, 140, 110)))
        yield server


@pytest.fixture
async def partner_client(bootstrapped) -> AsyncIterator[httpx.AsyncClient]:
    """The API of an operator who allows fetching from loopback (where the test's photos are served)."""
    app = create_app(bootstrapped.model_copy(update={"egress_allowed_networks": ["127.0.0.0/8"]}))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        yield client
    if app.state.context is not None:
        await app.state.context.close()


async def test_styles_per_gender(client, api_key) -> None:
    man = (await client.get("/v1/styles", params={"gender": "man"}, headers=bearer(api_key))).json()
    woman = (await client.get("/v1/styles", params={"gender": "woman"}, headers=bearer(api_key))).json()
    assert "gentleman" in [s["id"] for s in man["styles"]] and "elegant" not in [s["id"] for s in man["styles"]]
    assert "elegant" in [s["id"] for s in woman["styles"]]
    for params in ({"gender": "other"}, {}):
        response = await client.get("/v1/styles", params=params, headers=bearer(api_key))
        assert response.status_code == 422 and response.json()["error"]["field"] == "gender"


async def test_portrait_trains_then_generates_each_style(
    partner_client, client, api_key, photos, webhooks_source
) -> None:
    key = (
        await client.post(
            "/v1/uploads", content=png((180, 130, 100)), headers={**bearer(api_key), "Content-Type": "image/png"}
        )
    ).json()["key"]
    style_key = (
        await client.post(
            "/v1/uploads",
            content=png((30, 90, 200), (80, 48)),
            headers={**bearer(api_key), "Content-Type": "image/png"},
        )
    ).json()["key"]
    body = {
        "gender": "man",
        "styles": ["business", "gentleman", style_key],
        "customizations": "wearing glasses, thick beard, mohawk haircut",
        "imageUrls": [f"{photos.base_url}/me-1.jpg", f"{photos.base_url}/me-2.jpg"],
        "imageKeys": [key],
        "parameters": QUICK,
        "webhook": f"{photos.base_url}/hook",
        "webhookEvents": ["start", "completed"],
    }
    photos.routes["/hook"] = (200, {}, b"ok")
    response = await partner_client.post("/v1/portraits", json=body, headers=bearer(api_key))
    assert response.status_code == 202, response.text
    portrait = response.json()
    assert portrait["status"] == "training" and portrait["portraitId"].startswith("prt_")
    assert response.headers["location"] == f"/v1/portraits/{portrait['portraitId']}"
    assert [s["id"] for s in portrait["styles"]] == ["business", "gentleman", style_key]
    assert sorted(photos.requests) == ["/me-1.jpg", "/me-2.jpg"]

    # Seed 004: square 640x640, white padding where the photo was not square.
    data = (await client.get(f"/v1/models/{portrait['modelId']}/training-data", headers=bearer(api_key))).json()
    assert len(data) == 3 and all((d["width"], d["height"]) == (640, 640) for d in data)
    banded = []
    for item in (d for d in data if d["format"] == "jpeg"):
        url = f"/v1/models/{portrait['modelId']}/training-data/{item['dataId']}"
        encoded = (await client.get(url, headers=bearer(api_key))).json()["dataUrl"].split(",", 1)[1]
        image = Image.open(io.BytesIO(base64.b64decode(encoded))).convert("RGB")
        assert image.getpixel((320, 320)) != (255, 255, 255), "the subject must fill the middle"
        banded.append(image.getpixel((320, 5)) == image.getpixel((320, 634)) == (255, 255, 255))
    # The 96x64 photo is padded above and below with white; the square one fills its square.
    assert sorted(banded) == [False, True]

    async def probe() -> dict:
        got = await client.get(f"/v1/portraits/{portrait['portraitId']}", headers=bearer(api_key))
        assert got.status_code == 200, got.text
        return got.json()

    done = await eventually(
        probe, lambda v: v["status"] in ("completed", "failed"), timeout_s=180, what="portrait completion"
    )
    assert done["status"] == "completed", done
    assert done["trainingStatus"] == "succeeded"
    for style in done["styles"]:
        assert style["status"] == "completed" and len(style["images"]) == 1
        job = (await client.get(f"/v1/images/jobs/{style['jobId']}", headers=bearer(api_key))).json()
        assert "wearing glasses, thick beard, mohawk haircut" in job["prompt"]
        assert job["adapters"][0]["modelId"] == portrait["modelId"]
        # An uploaded style image is painted over (image-to-image); listed styles are text-to-image.
        assert job["type"] == ("image-to-image" if style["id"] == style_key else "text-to-image")
    training = (
        await client.get(
            f"/v1/models/{portrait['modelId']}/trainings/{portrait['trainingId']}", headers=bearer(api_key)
        )
    ).json()
    assert training["triggerWord"] in job["prompt"]

    # The portrait's webhook: called when its training started and when it completed, signed.
    async def hook_posts() -> list:
        return [p for p in photos.posts if p.path == "/hook"]

    posts = await eventually(hook_posts, lambda found: len(found) == 2, what="the portrait's webhook calls")
    secret = (await client.get("/v1/webhooks/secret", headers=bearer(api_key))).json()["secret"]
    hooks = [Webhook(secret).verify(p.body, p.headers) for p in posts]
    assert sorted(h["type"] for h in hooks) == ["job.completed", "job.start"]
    assert {h["data"]["jobId"] for h in hooks} == {portrait["portraitId"]}
    assert {h["data"]["kind"] for h in hooks} == {"portrait"}
    shown = (await client.get(f"/v1/portraits/{portrait['portraitId']}", headers=bearer(api_key))).json()
    assert sorted(d["event"] for d in shown["deliveries"]) == ["completed", "start"]


async def test_portrait_refuses_private_urls_without_contacting_them(client, api_key, photos) -> None:
    body = {"gender": "woman", "styles": ["elegant"], "imageUrls": [f"{photos.base_url}/me-1.jpg"]}
    response = await client.post("/v1/portraits", json=body, headers=bearer(api_key))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "image_url_unusable" and error["field"] == "imageUrls.0"
    assert photos.requests == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"styles": ["gentleman"], "gender": "woman"}, "styles.0"),
        ({"styles": ["no-such-style"]}, "styles.0"),
        ({"styles": ["business", "upl_00000000000000000000dead"]}, "styles.1"),
        ({"styles": []}, "styles"),
        ({"gender": "robot"}, "gender"),
        ({"customizations": "glasses,, beard"}, "customizations"),
        ({"imageKeys": [], "imageUrls": []}, None),
        ({"imageKeys": ["upl_00000000000000000000dead"]}, "imageKeys.0"),
        ({"imageUrls": ["ftp://example.com/a.jpg"]}, "imageUrls.0"),
        ({"imagesPerStyle": 5}, "imagesPerStyle"),
    ],
)
async def test_portrait_bad_input(client, api_key, changes, field) -> None:
    key = (
        await client.post(
            "/v1/uploads", content=png((1, 1, 1)), headers={**bearer(api_key), "Content-Type": "image/png"}
        )
    ).json()["key"]
    body = {"gender": "man", "styles": ["business"], "imageKeys": [key], **changes}
    response = await client.post("/v1/portraits", json=body, headers=bearer(api_key))
    assert response.status_code == 422, response.text
    if field:
        assert response.json()["error"]["field"] == field


async def test_another_tenants_upload_key_and_portrait_are_not_found(client, api_key, other_api_key) -> None:
    key = (
        await client.post(
            "/v1/uploads", content=png((2, 2, 2)), headers={**bearer(api_key), "Content-Type": "image/png"}
        )
    ).json()["key"]
    body = {"gender": "man", "styles": ["business"], "imageKeys": [key]}
    response = await client.post("/v1/portraits", json=body, headers=bearer(other_api_key))
    assert response.status_code == 422 and response.json()["error"]["code"] == "upload_not_found"
    as_style = {**body, "styles": [key], "imageKeys": []}
    own_photo = (
        await client.post(
            "/v1/uploads", content=png((3, 3, 3)), headers={**bearer(other_api_key), "Content-Type": "image/png"}
        )
    ).json()["key"]
    response = await client.post(
        "/v1/portraits", json={**as_style, "imageKeys": [own_photo]}, headers=bearer(other_api_key)
    )
    assert response.status_code == 422 and response.json()["error"]["field"] == "styles.0"
    missing = await client.get("/v1/portraits/prt_00000000000000000000", headers=bearer(api_key))
    assert missing.status_code == 404
    model_id = (await create_model(client, api_key, name="x"))["id"]
    assert (await client.get(f"/v1/portraits/{model_id}", headers=bearer(api_key))).status_code == 404
