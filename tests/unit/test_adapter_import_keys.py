"""The kernel's part of adapter imports: the presigned upload's key, import ids, the statuses an import replaces,
and where a model's adapter came from."""

from __future__ import annotations

from urllib.parse import quote_plus

from events.generation import AdapterRef
from events.records.models import AdapterOrigin, ImportedAdapter, ModelRecord
from events.states import MODEL, MODEL_IMPORT_FROM, ModelStatus
from events.storage_keys import (
    adapter_import_key,
    is_import_id,
    parse_adapter_upload_key,
    parse_upload_key,
    upload_adapter_key,
    upload_raw_key,
)
from events.usecases.adapter_imports import import_id_for_upload, new_import_id


def test_an_adapter_upload_key_parses_as_its_own_and_not_as_an_image_upload() -> None:
    key = upload_adapter_key("tenant.a", "upl_0123abcd")
    ref = parse_adapter_upload_key(quote_plus(key, safe="/"))  # notifications arrive URL-encoded
    assert ref is not None and (ref.tenant_id, ref.upload_id) == ("tenant.a", "upl_0123abcd")
    assert parse_upload_key(key) is None
    assert parse_adapter_upload_key(upload_raw_key("tenant.a", "upl_0123abcd")) is None
    assert parse_adapter_upload_key("uploads/t/upl_0123abcd/adapter.safetensors.bak") is None


def test_import_ids_name_keys_a_generation_may_use() -> None:
    for import_id in (new_import_id(), import_id_for_upload("upl_0123456789abcdef")):
        assert is_import_id(import_id) and not is_import_id("trn_0123")
        ref = AdapterRef(modelId="mod_1", trainingId=import_id, key=adapter_import_key("mod_1", import_id, "ab" * 32))
        assert ref.key.endswith(f"/{import_id}/{'ab' * 8}/adapter.safetensors")
    assert import_id_for_upload("upl_ab12") == import_id_for_upload("upl_ab12")


def test_an_import_replaces_every_status_but_training_and_adds_no_move_to_the_model_machine() -> None:
    assert set(ModelStatus) - {ModelStatus.TRAINING} == MODEL_IMPORT_FROM
    # A training's late result marker must find no way from trained to trained over an import.
    assert MODEL.allowed_predecessors(ModelStatus.TRAINED) == {ModelStatus.TRAINING}


def _imported(import_id: str) -> ImportedAdapter:
    return ImportedAdapter(
        importId=import_id,
        format="kohya",
        rank=4,
        layers=3,
        bytes=10,
        storedBytes=9,
        sha256="0" * 64,
        importedAt="2026-01-01T00:00:00+00:00",
    )


def test_the_adapter_origin_follows_the_adapter_served() -> None:
    model = ModelRecord(modelId="mod_1", tenantId="t", name="n", baseModel="tiny-sd", type="sd-1_5-lora")
    assert model.adapter_origin is None
    imported = model.model_copy(
        update={"adapterKey": "k", "adapterTrainingId": "imp_1", "importedAdapter": _imported("imp_1")}
    )
    assert imported.adapter_origin is AdapterOrigin.IMPORT and imported.served_import is not None
    retrained = imported.model_copy(update={"adapterTrainingId": "trn_2"})
    assert retrained.adapter_origin is AdapterOrigin.TRAINING and retrained.served_import is None
