"""A presigned LoRA file upload's notification, on the fakes: whatever happens to the import, the upload ends
settled and its object deleted (a file that broke the import is rejected `internal`, not redelivered into a dead
letter queue); and a file the readers break on is a 422 on the PUT path, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from events.records.uploads import UploadPurpose, UploadRecord
from events.states import UploadStatus
from events.storage_keys import UploadRef, upload_adapter_key
from events.usecases.adapter_imports import AdapterRefused
from functions import adapter_files
from functions.adapter_files import INVALID_CODE, refused
from functions.api.app import create_app
from functions.s3_events import adapter_uploads
from tests.fakes import FakeBackends
from tests.support import bearer
from tests.usecases.builders import TENANT, new_model
from tests.usecases.test_adapter_imports import ScriptedFiles

UPLOAD_ID = "upl_" + "ab" * 8
KEY = upload_adapter_key(TENANT, UPLOAD_ID)


async def _pending(backends: FakeBackends, status: UploadStatus = UploadStatus.PENDING) -> None:
    await new_model(backends)
    record = UploadRecord(
        uploadId=UPLOAD_ID, tenantId=TENANT, purpose=UploadPurpose.ADAPTER, status=status, modelId="mdl_1"
    )
    await backends.uploads.create(record, 3600)
    backends.store.objects[KEY] = b"a lora file"


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> ScriptedFiles:
    files = ScriptedFiles()
    monkeypatch.setattr(adapter_uploads, "LoraFiles", lambda settings: files)
    return files


async def _upload(backends: FakeBackends) -> UploadRecord:
    upload = await backends.uploads.get(UPLOAD_ID)
    assert upload is not None
    return upload


async def test_an_unexpected_error_rejects_the_upload_internal_and_deletes_its_object(
    backends: FakeBackends, scripted: ScriptedFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _pending(backends)

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a secret stack detail")

    monkeypatch.setattr(adapter_uploads, "import_adapter", broken)
    await adapter_uploads.apply_adapter_upload(backends, UploadRef(TENANT, UPLOAD_ID))
    upload = await _upload(backends)
    assert upload.status is UploadStatus.REJECTED and upload.error is not None
    assert upload.error.code == "internal" and "secret" not in upload.error.message
    assert KEY not in backends.store.objects
    # The redelivery SQS would make changes nothing.
    await adapter_uploads.apply_adapter_upload(backends, UploadRef(TENANT, UPLOAD_ID))
    assert (await _upload(backends)).status is UploadStatus.REJECTED


async def test_an_error_while_settling_still_deletes_the_object_and_the_redelivery_rejects_it(
    backends: FakeBackends, scripted: ScriptedFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _pending(backends)
    real_settle = backends.uploads.settle

    async def settle_fails_once(*args: object, **kwargs: object) -> None:
        monkeypatch.setattr(backends.uploads, "settle", real_settle)
        raise ConnectionError("DynamoDB is away")

    monkeypatch.setattr(backends.uploads, "settle", settle_fails_once)
    with pytest.raises(ConnectionError):
        await adapter_uploads.apply_adapter_upload(backends, UploadRef(TENANT, UPLOAD_ID))
    assert KEY not in backends.store.objects
    await adapter_uploads.apply_adapter_upload(backends, UploadRef(TENANT, UPLOAD_ID))
    upload = await _upload(backends)
    assert upload.status is UploadStatus.REJECTED and upload.error is not None
    assert upload.error.code == "upload_missing"


@pytest.mark.parametrize("status", [UploadStatus.READY, UploadStatus.REJECTED])
async def test_a_late_post_to_a_settled_upload_is_deleted_and_changes_nothing(
    backends: FakeBackends, scripted: ScriptedFiles, status: UploadStatus
) -> None:
    await _pending(backends, status)
    await adapter_uploads.apply_adapter_upload(backends, UploadRef(TENANT, UPLOAD_ID))
    assert KEY not in backends.store.objects and scripted.checked == []
    assert (await _upload(backends)).status is status
    assert backends.models.documents["mdl_1"]["status"] == "new"


async def test_a_file_with_no_live_upload_is_deleted(backends: FakeBackends, scripted: ScriptedFiles) -> None:
    backends.store.objects[KEY] = b"a lora file"
    await adapter_uploads.apply_adapter_upload(backends, UploadRef(TENANT, UPLOAD_ID))
    assert backends.store.objects == {} and scripted.checked == []


def test_a_reader_error_is_a_refusal_naming_it_and_memory_stays_what_it_is() -> None:
    with pytest.raises(AdapterRefused) as caught, refused():
        raise KeyError("x" * 10_000)
    assert caught.value.code == INVALID_CODE and caught.value.field == "file"
    assert "xxx" in caught.value.message and len(caught.value.message) < 400
    with pytest.raises(MemoryError), refused():
        raise MemoryError


@pytest.fixture
async def client(backends: FakeBackends) -> AsyncIterator[httpx.AsyncClient]:
    backends.api_keys.add("lf_key", TENANT)
    app = create_app(backends.settings)
    app.state.context = backends
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        yield client


async def test_a_put_file_the_conversion_breaks_on_is_a_422_and_leaves_nothing(
    client: httpx.AsyncClient, backends: FakeBackends, monkeypatch: pytest.MonkeyPatch
) -> None:
    await new_model(backends)
    monkeypatch.setattr(adapter_files, "check_adapter", lambda *args, **kwargs: _summary())

    def breaks(data: bytes, spec: object, limits: object = None) -> bytes:
        raise IndexError("tuple index out of range")

    monkeypatch.setattr(adapter_files, "to_diffusers", breaks)
    headers = {**bearer("lf_key"), "content-type": "application/octet-stream"}
    response = await client.put("/v1/models/mdl_1/adapter", content=b"a lora file", headers=headers)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == INVALID_CODE and "tuple index out of range" in error["message"]
    assert backends.store.objects == {} and backends.models.documents["mdl_1"]["status"] == "new"


def _summary() -> object:
    class Summary:
        naming, rank, layers = "kohya", 4, 1

    return Summary()
