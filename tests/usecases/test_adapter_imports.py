"""Importing a LoRA file into a model, on the fakes: the use case's decisions (which models take a file, what a
refusal leaves, what a replacement frees, redelivery) with a scripted `AdapterFiles` in place of the real checks
(those are infra/lora_files' tests; the real files go through tests/integration/test_adapter_imports.py)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from events.persistence import StaleWrite
from events.records.models import AdapterOrigin, ConceptRef, ModelRecord
from events.records.tenants import TenantQuotas, TenantRecord
from events.states import MODEL, MODEL_IMPORT_FROM, ModelStatus
from events.storage_keys import (
    AdapterFormat,
    adapter_export_key,
    adapter_import_key,
    is_import_id,
    parse_adapter_upload_key,
    parse_upload_key,
    upload_adapter_key,
)
from events.usecases.adapter_imports import (
    AdapterFacts,
    AdapterFile,
    AdapterRefused,
    BaseModelSpec,
    import_adapter,
    import_id_for_upload,
)
from events.usecases.adapters import model_adapter
from events.usecases.errors import Conflict, Invalid, NotFound, QuotaExceeded
from functions.api.app import create_app
from functions.api.routes import adapter_imports as adapter_routes
from functions.api.services import adapter_imports as adapter_service
from functions.api.services.models import soft_delete_model
from tests.fakes import FakeBackends
from tests.support import bearer
from tests.usecases.builders import TENANT, new_model

FILE = AdapterFile(b"a lora file", "cat.safetensors")
CONVERTED = b"the file in diffusers naming"


@dataclass
class ScriptedFiles:
    """`AdapterFiles` whose answers a test sets: a refusal to raise, or facts to return."""

    refusal: AdapterRefused | None = None
    checked: list[int] = field(default_factory=list)

    def header_size(self, prefix: bytes) -> int:
        return 8

    def check(self, header: bytes, file_size: int, spec: BaseModelSpec) -> AdapterFacts:
        self.checked.append(file_size)
        if self.refusal is not None:
            raise self.refusal
        return AdapterFacts(naming="kohya", rank=4, layers=12)

    def to_diffusers(self, data: bytes, spec: BaseModelSpec) -> bytes:
        return CONVERTED


async def stored_bytes(backends: FakeBackends) -> int:
    tenant = await backends.tenants.get(TENANT)
    return tenant.storageBytes if tenant else 0


async def test_a_new_model_serves_the_imported_file_as_a_trained_adapter(backends: FakeBackends) -> None:
    await new_model(backends)
    model = await import_adapter(backends, ScriptedFiles(), TENANT, "mdl_1", FILE)
    imported = model.importedAdapter
    assert imported is not None and is_import_id(imported.importId)
    key = adapter_import_key("mdl_1", imported.importId, imported.sha256)
    assert key == f"models/mdl_1/adapters/{imported.importId}/{imported.sha256[:16]}/adapter.safetensors"
    assert model.status is ModelStatus.TRAINED and model.adapterKey == key
    assert model.adapterTrainingId == imported.importId and model.adapter_origin is AdapterOrigin.IMPORT
    assert (imported.format, imported.rank, imported.layers, imported.fileName) == ("kohya", 4, 12, "cat.safetensors")
    assert imported.bytes == len(FILE.data) and imported.sha256 == hashlib.sha256(FILE.data).hexdigest()
    assert imported.storedBytes == len(CONVERTED)
    # What is stored is the converted file, counted against the tenant's storage; generations name it.
    assert backends.store.objects[key] == CONVERTED and await stored_bytes(backends) == len(CONVERTED)
    ref = model_adapter(model)
    assert (ref.key, ref.trainingId, ref.epoch) == (key, imported.importId, None)


@pytest.mark.parametrize("status", sorted(MODEL_IMPORT_FROM))
async def test_an_import_replaces_any_status_but_training(backends: FakeBackends, status: ModelStatus) -> None:
    await new_model(backends)
    backends.models.documents["mdl_1"]["status"] = status.value
    model = await import_adapter(backends, ScriptedFiles(), TENANT, "mdl_1", FILE)
    assert model.status is ModelStatus.TRAINED


async def test_a_training_model_refuses_an_import_and_nothing_is_kept(backends: FakeBackends) -> None:
    await new_model(backends)
    backends.models.documents["mdl_1"]["status"] = ModelStatus.TRAINING.value
    before = dict(backends.models.documents["mdl_1"])
    with pytest.raises(Conflict) as refused:
        await import_adapter(backends, ScriptedFiles(), TENANT, "mdl_1", FILE)
    assert refused.value.code == "model_training"
    assert backends.models.documents["mdl_1"] == before and backends.store.objects == {}


async def test_another_tenants_model_and_a_composition_refuse_the_file(backends: FakeBackends) -> None:
    await new_model(backends)
    with pytest.raises(NotFound):
        await import_adapter(backends, ScriptedFiles(), "ten_other", "mdl_1", FILE)
    await backends.models.create(
        ModelRecord(
            modelId="mdl_mix",
            tenantId=TENANT,
            name="Mix",
            baseModel="tiny-sd",
            type="sd-1_5-composition",
            concepts=[ConceptRef(modelId="mdl_1", scale=1.0)],
        )
    )
    with pytest.raises(Invalid) as composition:
        await import_adapter(backends, ScriptedFiles(), TENANT, "mdl_mix", FILE)
    assert composition.value.code == "model_not_lora"
    assert backends.store.objects == {}


async def test_a_refused_file_leaves_no_object_no_record_change_and_no_bytes(backends: FakeBackends) -> None:
    await new_model(backends)
    before = dict(backends.models.documents["mdl_1"])
    files = ScriptedFiles(refusal=AdapterRefused("adapter_wrong_family", "this file is an sd-xl LoRA", field="file"))
    with pytest.raises(AdapterRefused) as refused:
        await import_adapter(backends, files, TENANT, "mdl_1", FILE)
    assert refused.value.code == "adapter_wrong_family" and isinstance(refused.value, Invalid)
    assert backends.models.documents["mdl_1"] == before
    assert backends.store.objects == {} and await stored_bytes(backends) == 0


async def test_a_file_over_the_storage_quota_is_refused_before_it_is_written(backends: FakeBackends) -> None:
    await new_model(backends)
    quotas = TenantQuotas(storageBytes=len(CONVERTED) - 1)
    await backends.tenants.create(TenantRecord(tenantId=TENANT, quotas=quotas))
    with pytest.raises(QuotaExceeded):
        await import_adapter(backends, ScriptedFiles(), TENANT, "mdl_1", FILE)
    assert backends.store.objects == {} and await stored_bytes(backends) == 0
    assert backends.models.documents["mdl_1"]["status"] == ModelStatus.NEW.value


async def test_the_same_file_sent_again_changes_nothing(backends: FakeBackends) -> None:
    await new_model(backends)
    files = ScriptedFiles()
    first = await import_adapter(backends, files, TENANT, "mdl_1", FILE)
    again = await import_adapter(backends, files, TENANT, "mdl_1", AdapterFile(FILE.data, "renamed.safetensors"))
    assert again == first and files.checked == [len(FILE.data)] and len(backends.store.objects) == 1


async def test_a_second_import_deletes_the_first_and_frees_its_bytes(backends: FakeBackends) -> None:
    await new_model(backends)
    first = await import_adapter(backends, ScriptedFiles(), TENANT, "mdl_1", FILE)
    second = await import_adapter(backends, ScriptedFiles(), TENANT, "mdl_1", AdapterFile(b"another file"))
    assert first.adapterKey != second.adapterKey
    assert sorted(backends.store.objects) == [second.adapterKey]
    assert await stored_bytes(backends) == len(CONVERTED)


async def test_an_import_removes_the_epoch_an_earlier_training_chose(backends: FakeBackends) -> None:
    await new_model(backends)
    document = backends.models.documents["mdl_1"]
    document |= {
        "status": "trained",
        "adapterKey": "trainings/trn_1/adapter.safetensors",
        "adapterTrainingId": "trn_1",
        "epoch": "000002",
        "trainingId": "trn_1",
    }
    trained = await backends.models.get("mdl_1")
    assert trained is not None and trained.adapter_origin is AdapterOrigin.TRAINING
    model = await import_adapter(backends, ScriptedFiles(), TENANT, "mdl_1", FILE)
    assert model.epoch is None and model_adapter(model).key == model.adapterKey
    # The training stays the model's last one: its late or redelivered result marker cannot move the model
    # (trained -> trained is no move of the model machine), so it cannot take the import back.
    assert model.trainingId == "trn_1" and not MODEL.can_transition(ModelStatus.TRAINED, ModelStatus.TRAINED)
    advance = await backends.models.advance("mdl_1", ModelStatus.TRAINED, {"adapterKey": "trainings/trn_1/x"})
    assert advance.outcome.value == "rejected"


async def test_a_training_that_succeeds_after_an_import_serves_instead(backends: FakeBackends) -> None:
    await new_model(backends)
    model = await import_adapter(backends, ScriptedFiles(), TENANT, "mdl_1", FILE)
    # As settle_model writes a training's success, knowing nothing of imports.
    backends.models.documents["mdl_1"] |= {"adapterKey": "trainings/trn_2/adapter.safetensors"}
    backends.models.documents["mdl_1"] |= {"adapterTrainingId": "trn_2"}
    after = await backends.models.get("mdl_1")
    assert after is not None and model.importedAdapter is not None
    assert after.adapter_origin is AdapterOrigin.TRAINING and after.served_import is None


async def test_a_training_started_between_the_check_and_the_write_wins(backends: FakeBackends) -> None:
    await new_model(backends)
    real_update = backends.models.update_fields

    async def training_starts_first(*args: object, **kwargs: object) -> ModelRecord:
        backends.models.documents["mdl_1"] |= {"status": "training", "version": 7}
        backends.models.update_fields = real_update  # type: ignore[method-assign]
        raise StaleWrite("mdl_1")

    backends.models.update_fields = training_starts_first  # type: ignore[method-assign]
    with pytest.raises(Conflict):
        await import_adapter(backends, ScriptedFiles(), TENANT, "mdl_1", FILE)
    assert backends.store.objects == {} and await stored_bytes(backends) == 0
    assert backends.models.documents["mdl_1"]["status"] == "training"


async def test_a_repeated_import_id_is_served_once(backends: FakeBackends) -> None:
    await new_model(backends)
    import_id = import_id_for_upload("upl_0123456789abcdef")
    files = ScriptedFiles()
    first = await import_adapter(backends, files, TENANT, "mdl_1", FILE, import_id=import_id)
    again = await import_adapter(backends, files, TENANT, "mdl_1", FILE, import_id=import_id)
    assert again.version == first.version and files.checked == [len(FILE.data)]
    assert first.adapterTrainingId == import_id and await stored_bytes(backends) == len(CONVERTED)


async def test_twin_deliveries_of_one_upload_keep_one_file_counted_once(backends: FakeBackends) -> None:
    await new_model(backends)
    import_id = import_id_for_upload("upl_00ff00ff")
    real_put = backends.store.put_bytes
    twins: list[ModelRecord] = []

    async def put_then_the_twin_runs(key: str, data: bytes, content_type: str) -> None:
        await real_put(key, data, content_type)
        if not twins:  # the same notification, delivered again while this one runs, gets to the model first
            twins.append(ModelRecord.model_construct())
            twins[0] = await import_adapter(backends, ScriptedFiles(), TENANT, "mdl_1", FILE, import_id=import_id)

    backends.store.put_bytes = put_then_the_twin_runs  # type: ignore[method-assign]
    model = await import_adapter(backends, ScriptedFiles(), TENANT, "mdl_1", FILE, import_id=import_id)
    assert model == twins[0] and model.adapterTrainingId == import_id
    assert list(backends.store.objects) == [model.adapterKey] and await stored_bytes(backends) == len(CONVERTED)


@dataclass
class SizedFiles(ScriptedFiles):
    """Converts a file to itself, so two files make two stored sizes."""

    def to_diffusers(self, data: bytes, spec: BaseModelSpec) -> bytes:
        return data


async def test_a_presigned_form_posted_twice_keeps_the_served_file_alone_counted(backends: FakeBackends) -> None:
    await new_model(backends)
    import_id = import_id_for_upload("upl_00ff00ff")
    big, small = AdapterFile(b"b" * 5000), AdapterFile(b"s" * 10)
    real_put = backends.store.put_bytes
    small_served = asyncio.Event()

    async def big_is_slower(key: str, data: bytes, content_type: str) -> None:
        if data == big.data:
            await asyncio.wait_for(small_served.wait(), 5)
        await real_put(key, data, content_type)

    backends.store.put_bytes = big_is_slower  # type: ignore[method-assign]
    first = asyncio.create_task(import_adapter(backends, SizedFiles(), TENANT, "mdl_1", big, import_id=import_id))
    served = await import_adapter(backends, SizedFiles(), TENANT, "mdl_1", small, import_id=import_id)
    small_served.set()
    assert await first == served
    model = await backends.models.get("mdl_1")
    assert model is not None and model.importedAdapter is not None and model.importedAdapter.storedBytes == 10
    assert list(backends.store.objects) == [model.adapterKey] and backends.store.objects[model.adapterKey] == small.data
    assert await stored_bytes(backends) == 10


async def test_a_twin_delivery_whose_write_fails_leaves_neither_file_nor_reservation(backends: FakeBackends) -> None:
    await new_model(backends)
    import_id = import_id_for_upload("upl_00ff00ff")
    real_put = backends.store.put_bytes

    async def the_twin_serves_then_this_put_fails(key: str, data: bytes, content_type: str) -> None:
        backends.store.put_bytes = real_put  # type: ignore[method-assign]
        await import_adapter(backends, SizedFiles(), TENANT, "mdl_1", AdapterFile(b"s" * 10), import_id=import_id)
        raise ConnectionError("S3 is away")

    backends.store.put_bytes = the_twin_serves_then_this_put_fails  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await import_adapter(backends, SizedFiles(), TENANT, "mdl_1", AdapterFile(b"b" * 5000), import_id=import_id)
    model = await backends.models.get("mdl_1")
    assert model is not None and model.adapterTrainingId == import_id
    assert list(backends.store.objects) == [model.adapterKey] and await stored_bytes(backends) == 10


async def test_a_replaced_import_takes_its_kohya_download_with_it(backends: FakeBackends) -> None:
    await new_model(backends)
    first = await import_adapter(backends, ScriptedFiles(), TENANT, "mdl_1", FILE)
    assert first.adapterKey is not None
    export = adapter_export_key(first.adapterKey, AdapterFormat.KOHYA)
    backends.store.objects[export] = b"the kohya download"
    second = await import_adapter(backends, ScriptedFiles(), TENANT, "mdl_1", AdapterFile(b"another file"))
    assert sorted(backends.store.objects) == [second.adapterKey]


async def test_a_model_write_whose_answer_is_lost_keeps_the_file_it_serves(backends: FakeBackends) -> None:
    await new_model(backends)
    real_update = backends.models.update_fields

    async def written_then_lost(*args: Any, **kwargs: Any) -> ModelRecord:
        await real_update(*args, **kwargs)
        raise ConnectionError("the answer was lost")

    backends.models.update_fields = written_then_lost  # type: ignore[method-assign]
    with pytest.raises(ConnectionError):
        await import_adapter(backends, ScriptedFiles(), TENANT, "mdl_1", FILE)
    model = await backends.models.get("mdl_1")
    assert model is not None and model.adapterKey in backends.store.objects
    assert await stored_bytes(backends) == len(CONVERTED)


# -- the routes, on the fakes ---------------------------------------------------------------------------------
KEY = "lf_test_key"
OTHER_KEY = "lf_other_key"


@pytest.fixture
def files(monkeypatch: pytest.MonkeyPatch) -> ScriptedFiles:
    """The scripted checks in place of the real ones, in the API's service."""
    scripted = ScriptedFiles()
    monkeypatch.setattr(adapter_service, "LoraFiles", lambda settings: scripted)
    return scripted


@pytest.fixture
async def client(backends: FakeBackends, files: ScriptedFiles) -> AsyncIterator[httpx.AsyncClient]:
    backends.api_keys.add(KEY, TENANT)
    backends.api_keys.add(OTHER_KEY, "ten_2")
    app = create_app(backends.settings)
    if not any(getattr(route, "path", "") == "/v1/models/{modelId}/adapter" for route in app.routes):
        app.include_router(adapter_routes.router)  # until app.py includes it
    app.state.context = backends
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield client


def raw(name: str | None = None) -> dict[str, str]:
    headers = {**bearer(KEY), "content-type": "application/octet-stream"}
    return headers | ({"x-file-name": name} if name else {})


async def test_put_adapter_answers_the_model_serving_it(client: httpx.AsyncClient, backends: FakeBackends) -> None:
    await new_model(backends)
    response = await client.put("/v1/models/mdl_1/adapter", content=FILE.data, headers=raw("cat.safetensors"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "active" and body["adapterOrigin"] == "import"
    imported = body["importedAdapter"]
    assert imported["fileName"] == "cat.safetensors" and imported["format"] == "kohya" and imported["rank"] == 4
    assert imported["bytes"] == len(FILE.data) and "storedBytes" not in imported
    # The Scenario-style model object shows it too.
    detail = (await client.get("/v1/models/mdl_1", headers=bearer(KEY))).json()
    shown = detail.get("model", detail)
    assert shown["adapterOrigin"] == "import" and shown["importedAdapter"]["importId"] == imported["importId"]


async def test_put_adapter_refusals_are_4xx_naming_the_problem(
    client: httpx.AsyncClient, backends: FakeBackends, files: ScriptedFiles
) -> None:
    await new_model(backends)
    files.refusal = AdapterRefused("adapter_truncated", "the header promises 900 bytes and the file has 450", "file")
    response = await client.put("/v1/models/mdl_1/adapter", content=FILE.data, headers=raw())
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "adapter_truncated" and "900 bytes" in error["message"]
    files.refusal = None
    assert (await client.put("/v1/models/mdl_1/adapter", content=FILE.data, headers=raw())).status_code == 200
    cross = await client.put("/v1/models/mdl_1/adapter", content=FILE.data, headers={**raw(), **bearer(OTHER_KEY)})
    assert cross.status_code == 404
    backends.models.documents["mdl_1"]["status"] = "training"
    busy = await client.put("/v1/models/mdl_1/adapter", content=FILE.data, headers=raw())
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "model_training"


async def test_a_body_over_the_raw_limit_is_413_pointing_at_the_presigned_upload(
    client: httpx.AsyncClient, backends: FakeBackends
) -> None:
    await new_model(backends)
    backends.settings.max_adapter_bytes = 2048
    response = await client.put("/v1/models/mdl_1/adapter", content=b"\0" * 4096, headers=raw())
    assert response.status_code == 413 and "presigned" in response.json()["error"]["message"]
    assert backends.store.objects == {} and backends.models.documents["mdl_1"]["status"] == "new"


async def test_a_presigned_adapter_upload_is_recorded_pending_for_the_model(
    client: httpx.AsyncClient, backends: FakeBackends
) -> None:
    await new_model(backends)
    response = await client.post(
        "/v1/models/mdl_1/adapter/presigned", json={"name": "big.safetensors"}, headers=bearer(KEY)
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "pending" and body["modelId"] == "mdl_1"
    key = upload_adapter_key(TENANT, body["uploadId"])
    assert body["upload"]["fields"]["key"] == key
    assert body["upload"]["maxBytes"] == backends.settings.max_adapter_upload_bytes
    assert parse_adapter_upload_key(key) is not None and parse_upload_key(key) is None
    read = await client.get(f"/v1/models/mdl_1/adapter/uploads/{body['uploadId']}", headers=bearer(KEY))
    assert read.status_code == 200 and read.json()["status"] == "pending" and "upload" not in read.json()
    other = await client.get(f"/v1/models/mdl_1/adapter/uploads/{body['uploadId']}", headers=bearer(OTHER_KEY))
    assert other.status_code == 404
    # A model that cannot take a file is refused before any upload is recorded.
    backends.models.documents["mdl_1"]["status"] = "training"
    busy = await client.post("/v1/models/mdl_1/adapter/presigned", headers=bearer(KEY))
    assert busy.status_code == 409 and len(backends.uploads.documents) == 1


async def test_deleting_the_model_frees_the_imported_files_bytes(
    client: httpx.AsyncClient, backends: FakeBackends
) -> None:
    await new_model(backends)
    assert (await client.put("/v1/models/mdl_1/adapter", content=FILE.data, headers=raw())).status_code == 200
    assert await stored_bytes(backends) == len(CONVERTED)
    model = await backends.models.get("mdl_1")
    assert model is not None
    await soft_delete_model(backends, model)  # what DELETE /v1/models/{id} runs (a signed call)
    assert await stored_bytes(backends) == 0
