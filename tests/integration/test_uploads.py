"""Uploads: seed 004's image keys, and presigned uploads validated by the S3-notification handler."""

from __future__ import annotations

import io
import time
from datetime import datetime

import httpx
import pytest
from PIL import Image

from events.records.uploads import UploadPurpose, UploadRecord
from events.states import UploadStatus
from tests.journeys import create_model, png
from tests.support import bearer, eventually


async def _upload_view(client: httpx.AsyncClient, api_key: str, key: str) -> dict:
    return (await client.get(f"/v1/uploads/{key}", headers=bearer(api_key))).json()


pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("poller")]


async def _post_to_s3(upload: dict, data: bytes) -> httpx.Response:
    """What a browser or client does with a presigned POST: the fields, then the file."""
    async with httpx.AsyncClient() as http:
        return await http.post(upload["url"], data=upload["fields"], files={"file": ("photo.jpg", data)})


def _jpeg(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buffer, format="JPEG")
    return buffer.getvalue()


async def test_upload_returns_a_key_that_expires_in_24_hours(client, api_key) -> None:
    response = await client.post(
        "/v1/uploads", content=png((10, 200, 10)), headers={**bearer(api_key), "Content-Type": "image/png"}
    )
    assert response.status_code == 201, response.text
    upload = response.json()
    assert upload["key"].startswith("upl_") and upload["status"] == "ready" and upload["purpose"] == "image"
    assert (upload["width"], upload["height"], upload["format"]) == (64, 64, "png")
    lifetime = datetime.fromisoformat(upload["expiresAt"]).timestamp() - time.time()
    assert 24 * 3600 - 60 < lifetime <= 24 * 3600
    async with httpx.AsyncClient() as http:
        stored = await http.get(upload["url"])
    assert Image.open(io.BytesIO(stored.content)).size == (64, 64)

    # The same as a multipart form, as a browser sends it.
    form = await client.post(
        "/v1/uploads", files={"file": ("style.jpg", _jpeg((80, 60)), "image/jpeg")}, headers=bearer(api_key)
    )
    assert form.status_code == 201, form.text
    assert form.json()["format"] == "jpeg" and form.json()["width"] == 80

    again = await client.get(f"/v1/uploads/{upload['key']}", headers=bearer(api_key))
    assert again.status_code == 200 and again.json()["status"] == "ready"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"", "image/png", 400, "empty_body"),
        (b"GIF89a not ours", "image/gif", 415, "unsupported_image_format"),
        (b"\x89PNG\r\n\x1a\n truncated", "image/png", 422, "corrupt_image"),
        (b"x" * (10 * 1024 * 1024 + 70 * 1024), "image/png", 413, "payload_too_large"),
    ],
)
async def test_bad_uploads_are_refused(client, api_key, body, content_type, status, code) -> None:
    response = await client.post("/v1/uploads", content=body, headers={**bearer(api_key), "Content-Type": content_type})
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code


async def test_multipart_without_a_file_field_names_it(client, api_key) -> None:
    response = await client.post(
        "/v1/uploads", data={"name": "x"}, files={"other": ("a", b"b")}, headers=bearer(api_key)
    )
    assert response.status_code == 422 and response.json()["error"]["field"] == "file"


async def test_another_tenants_or_an_expired_key_is_not_found(client, api_key, other_api_key, context) -> None:
    upload = (
        await client.post(
            "/v1/uploads", content=png((1, 2, 3)), headers={**bearer(api_key), "Content-Type": "image/png"}
        )
    ).json()
    foreign = await client.get(f"/v1/uploads/{upload['key']}", headers=bearer(other_api_key))
    assert foreign.status_code == 404 and foreign.json()["error"]["code"] == "upload_not_found"
    # TTL deletes late, so an expired record must already read as gone.
    await context.uploads.create(
        UploadRecord(
            uploadId="upl_00000000deadbeef",
            tenantId="tenant-a",
            purpose=UploadPurpose.IMAGE,
            status=UploadStatus.READY,
        ),
        expires_in_s=-1,
    )
    expired = await client.get("/v1/uploads/upl_00000000deadbeef", headers=bearer(api_key))
    assert expired.status_code == 404


async def test_presigned_training_image_becomes_ready_after_validation(client, api_key) -> None:
    model_id = (await create_model(client, api_key, name="presigned"))["id"]
    response = await client.post(
        f"/v1/models/{model_id}/training-data/presigned", json={"name": "big.jpg"}, headers=bearer(api_key)
    )
    assert response.status_code == 201, response.text
    ticket = response.json()
    assert ticket["status"] == "pending" and ticket["purpose"] == "training-data"
    assert ticket["upload"]["maxBytes"] == 25 * 1024 * 1024 and ticket["dataId"].startswith("dat_")
    data_id = ticket["dataId"]

    listed = (await client.get(f"/v1/models/{model_id}/training-data", headers=bearer(api_key))).json()
    assert [(i["dataId"], i["status"]) for i in listed] == [(data_id, "pending")]
    early = await client.post(f"/v1/models/{model_id}/trainings", json={}, headers=bearer(api_key))
    assert early.status_code == 409 and early.json()["error"]["code"] == "training_data_pending"
    not_yet = await client.get(f"/v1/models/{model_id}/training-data/{data_id}", headers=bearer(api_key))
    assert not_yet.status_code == 409 and not_yet.json()["error"]["code"] == "data_not_ready"
    # A caption given while the image is pending stays with it once it lands.
    described = await client.patch(
        f"/v1/models/{model_id}/training-data/{data_id}", json={"description": "a big photo"}, headers=bearer(api_key)
    )
    assert described.status_code == 200 and described.json()["status"] == "pending", described.text

    # A big photo: bigger than the stored size, so it is normalized down on the way.
    stored = await _post_to_s3(ticket["upload"], _jpeg((1600, 1200)))
    assert stored.status_code in (200, 201, 204), stored.text

    async def item() -> dict:
        return (await client.get(f"/v1/models/{model_id}/training-data/{data_id}", headers=bearer(api_key))).json()

    ready = await eventually(item, lambda v: v.get("status") == "ready", timeout_s=30, what="presigned image ready")
    assert (ready["width"], ready["height"], ready["format"]) == (1024, 768, "jpeg")
    assert ready["name"] == "big.jpg" and ready["dataUrl"].startswith("data:image/png;base64,")
    assert ready["description"] == "a big photo"
    # The image is settled before its upload record (a redelivery then finishes both): wait for the record too.
    upload = await eventually(
        lambda: _upload_view(client, api_key, ticket["key"]), lambda v: v["status"] != "pending", what="upload ready"
    )
    assert upload["status"] == "ready" and upload["dataId"] == data_id


async def test_presigned_upload_of_a_non_image_is_rejected_with_the_reason(client, api_key) -> None:
    model_id = (await create_model(client, api_key, name="rejects"))["id"]
    ticket = (await client.post(f"/v1/models/{model_id}/training-data/presigned", headers=bearer(api_key))).json()
    await _post_to_s3(ticket["upload"], b"%PDF-1.7 this is not a photo")

    async def listed() -> list:
        return (await client.get(f"/v1/models/{model_id}/training-data", headers=bearer(api_key))).json()

    items = await eventually(listed, lambda v: v[0]["status"] != "pending", timeout_s=30, what="rejection")
    assert items[0]["status"] == "rejected"
    assert items[0]["error"]["code"] == "unsupported_image_format"
    upload = await eventually(
        lambda: _upload_view(client, api_key, ticket["key"]), lambda v: v["status"] != "pending", what="upload rejected"
    )
    assert upload["status"] == "rejected" and "webp, png or jpeg" in upload["error"]["message"]
    # A rejected image is not trained on, and does not block: with no ready image the answer says so.
    training = await client.post(f"/v1/models/{model_id}/trainings", json={}, headers=bearer(api_key))
    assert training.status_code == 409 and training.json()["error"]["code"] == "no_training_data"


async def test_free_standing_presigned_upload_and_cross_tenant_model(client, api_key, other_api_key) -> None:
    ticket = (await client.post("/v1/uploads/presigned", headers=bearer(api_key))).json()
    assert ticket["status"] == "pending" and ticket["purpose"] == "image"
    await _post_to_s3(ticket["upload"], png((5, 5, 250)))

    async def probe() -> dict:
        return (await client.get(f"/v1/uploads/{ticket['key']}", headers=bearer(api_key))).json()

    ready = await eventually(probe, lambda v: v["status"] != "pending", timeout_s=30, what="upload validated")
    assert ready["status"] == "ready" and ready["url"]
    model_id = (await create_model(client, api_key, name="mine"))["id"]
    foreign = await client.post(f"/v1/models/{model_id}/training-data/presigned", headers=bearer(other_api_key))
    assert foreign.status_code == 404
    bad = await client.post("/v1/uploads/presigned", json={"name": 5}, headers=bearer(api_key))
    assert bad.status_code == 422


async def test_a_pending_presigned_training_image_breaks_neither_put_nor_delete(client, api_key) -> None:
    # Found by schemathesis: both calls read the item's key, which a pending item used to lack (500).
    model_id = (await create_model(client, api_key, name="pending key"))["id"]
    ready = await client.post(
        f"/v1/models/{model_id}/training-data",
        content=png((200, 10, 10)),
        headers={**bearer(api_key), "Content-Type": "image/png"},
    )
    assert ready.status_code == 201, ready.text
    ticket = (await client.post(f"/v1/models/{model_id}/training-data/presigned", headers=bearer(api_key))).json()
    assert ticket["status"] == "pending"

    updated = await client.put(f"/v1/models/{model_id}", json={}, headers=bearer(api_key))
    assert updated.status_code == 200, updated.text
    model = updated.json()["model"]
    # Both are counted; only the ready one has bytes to download.
    assert model["trainingImagesNumber"] == 2
    assert [i["id"] for i in model["trainingImages"]] == [ready.json()["dataId"]]

    deleted = await client.delete(f"/v1/models/{model_id}/training-data/{ticket['dataId']}", headers=bearer(api_key))
    assert deleted.status_code == 204, deleted.text
    listed = (await client.get(f"/v1/models/{model_id}/training-data", headers=bearer(api_key))).json()
    assert [i["dataId"] for i in listed] == [ready.json()["dataId"]]
    # The upload is settled, so a file sent to the old ticket later does not bring the image back.
    upload = (await client.get(f"/v1/uploads/{ticket['key']}", headers=bearer(api_key))).json()
    assert upload["status"] == "rejected" and upload["error"]["code"] == "deleted"
