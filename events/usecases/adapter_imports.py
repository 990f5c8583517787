"""Importing a LoRA file into a model (`PUT /v1/models/{id}/adapter`, or a presigned upload S3 announces):
check it against the model's base model, convert it to the naming the generator serves, store it, and make the
model serve it as it serves a trained adapter.

Pure flow over ports: the file checks and the conversion are an `AdapterFiles` port (the torch-free code of
`infra/lora_files/`, wrapped by the entry points), so the same flow runs in the API, in the notification handler
and on the fakes. A refused file raises `AdapterRefused` (422 with the problem's code) before anything is
written; a failure after the bytes are stored takes them back (object and quota bytes), so a refusal leaves
nothing behind.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from events.persistence import StaleWrite
from events.records.base import now_iso
from events.records.models import ImportedAdapter, ModelRecord
from events.states import MODEL_IMPORT_FROM, ModelStatus
from events.storage_keys import IMPORT_ID_PREFIX, AdapterFormat, adapter_export_key, adapter_import_key
from events.usecases.errors import Conflict, Invalid, NotFound
from events.usecases.ports import ArtifactStore, BaseModelSpec, ModelStore, QuotaAwareBackends
from events.usecases.quotas import release_storage, reserve_storage

ADAPTER_CONTENT_TYPE = "application/octet-stream"
# Two imports of one model at once: each attempt re-reads the model, so the last writer wins and cleans up
# the import it replaced.
WRITE_ATTEMPTS = 5


@dataclass(frozen=True)
class AdapterFacts:
    """What the checks learned of a LoRA file."""

    naming: str  # diffusers, peft or kohya
    rank: int
    layers: int


class AdapterRefused(Invalid):
    """A LoRA file that cannot serve on the model: `code` is the problem (`adapter_truncated`, ...), the message
    names it in words a user can act on."""


class AdapterFiles(Protocol):
    """The file checks and conversion (`infra.lora_files`, with the deployment's limits); each raises
    `AdapterRefused` for a file that cannot be used."""

    def header_size(self, prefix: bytes) -> int:
        """How many leading bytes of a file hold its header (from at least its first 8)."""
        ...

    def check(self, header: bytes, file_size: int, spec: BaseModelSpec) -> AdapterFacts:
        """Check a file (its whole bytes, or only its first `header_size` bytes) of `file_size` bytes against
        the base model `spec`: its family, layers, shapes, rank and size."""
        ...

    def to_diffusers(self, data: bytes, spec: BaseModelSpec) -> bytes:
        """The whole file in the naming the generator serves (what the trainer's `save_lora_weights` writes)."""
        ...


class ImportModelStore(ModelStore, Protocol):
    """Models, with the conditional partial update the import's status write is."""

    async def update_fields(
        self,
        record_id: str,
        fields: Mapping[str, Any],
        *,
        expected_version: int | None = None,
        remove: list[str] | tuple[str, ...] = (),
        condition: str | None = None,
        values: dict[str, Any] | None = None,
    ) -> ModelRecord:
        """Set (and remove) fields; raises `StaleWrite` when a condition fails."""
        ...


class ImportStore(ArtifactStore, Protocol):
    """The artifacts bucket, with deletes (a refused import takes its bytes back)."""

    async def delete(self, key: str) -> None:
        """Remove an object (absent is fine)."""
        ...


class ImportBackends(QuotaAwareBackends, Protocol):
    """What an import reaches, named as on `infra.runtime.ServiceContext`."""

    @property
    def models(self) -> ImportModelStore: ...
    @property
    def store(self) -> ImportStore: ...


@dataclass(frozen=True)
class AdapterFile:
    """A LoRA file as the caller sent it."""

    data: bytes
    name: str | None = None


def new_import_id() -> str:
    """A fresh import id (`imp_<hex>`: what `AdapterRef.trainingId` accepts for an import)."""
    return f"{IMPORT_ID_PREFIX}{secrets.token_hex(8)}"


def import_id_for_upload(upload_id: str) -> str:
    """The import id of a presigned upload's file: fixed by the upload, so a redelivered notification finds
    its import already served instead of importing twice."""
    return f"{IMPORT_ID_PREFIX}{upload_id.removeprefix('upl_')}"


def lora_type(spec: BaseModelSpec) -> str:
    """The model type of a LoRA on `spec` (`{family}-lora`): the only type an adapter file goes into."""
    return f"{spec.family}-lora"


async def importable_model(
    backends: ImportBackends, tenant_id: str, model_id: str
) -> tuple[ModelRecord, BaseModelSpec]:
    """The tenant's model and its base model, if a LoRA file may go into it now: `NotFound` (another tenant's
    looks like none), `Invalid` for a composition, `Conflict` while it trains or when its base is not served."""
    model = await backends.models.get_live(tenant_id, model_id)
    if model is None:
        raise NotFound("model_not_found", f"model {model_id!r} does not exist", field="modelId")
    spec = backends.base_models.get(model.baseModel)
    if spec is None:
        raise Conflict(
            "base_model_unavailable", f"model {model_id!r} is on base model {model.baseModel!r}, not served here"
        )
    if model.type != lora_type(spec):
        raise Invalid(
            "model_not_lora",
            f"model {model_id!r} is a {model.type} model: a LoRA file goes into a {lora_type(spec)} model",
            field="modelId",
        )
    if model.status not in MODEL_IMPORT_FROM:
        raise Conflict(
            "model_training",
            f"model {model_id!r} is {model.status.value}: cancel its training or wait for it to end, then import",
            field="modelId",
        )
    return model, spec


def import_key(model_id: str, imported: ImportedAdapter) -> str:
    """Where the converted file of the import `imported` of model `model_id` is stored."""
    return adapter_import_key(model_id, imported.importId, imported.sha256)


def imported_record(file: AdapterFile, facts: AdapterFacts, import_id: str, stored_bytes: int) -> ImportedAdapter:
    """The model's record of one import."""
    return ImportedAdapter(
        importId=import_id,
        format=facts.naming,
        rank=facts.rank,
        layers=facts.layers,
        bytes=len(file.data),
        storedBytes=stored_bytes,
        sha256=hashlib.sha256(file.data).hexdigest(),
        fileName=file.name,
        importedAt=now_iso(),
    )


async def import_adapter(
    backends: ImportBackends,
    files: AdapterFiles,
    tenant_id: str,
    model_id: str,
    file: AdapterFile,
    *,
    import_id: str | None = None,
) -> ModelRecord:
    """Check, convert and store a LoRA file, then make the model serve it (status `trained`, `adapterKey` the
    stored file, `adapterTrainingId` the import id, no epoch). `AdapterRefused` for the file, the model's
    refusals of `importable_model`, `QuotaExceeded` when its bytes do not fit: in each case nothing is kept.
    A model's previous import is deleted (and its bytes freed) once the new one serves. A repeat changes
    nothing and returns the model as it is: an `import_id` the model already has, or (a PUT sent again) the
    very file the model serves."""
    model, spec = await importable_model(backends, tenant_id, model_id)
    if _is_repeat(model, file, import_id):
        return model
    facts = files.check(file.data, len(file.data), spec)
    converted = files.to_diffusers(file.data, spec)
    imported = imported_record(file, facts, import_id or new_import_id(), len(converted))
    key = import_key(model_id, imported)
    await reserve_storage(backends, tenant_id, len(converted))
    try:
        await backends.store.put_bytes(key, converted, ADAPTER_CONTENT_TYPE)
        replaced, served = await _serve(backends, tenant_id, model_id, key, imported)
    except BaseException:
        # A write whose answer was lost may have landed: then the file serves, and stays counted.
        await _drop_unless_recorded(backends, tenant_id, await backends.models.get(model_id), key, imported)
        raise
    if replaced is None:
        # A twin delivery of the same upload (its form POSTed again) served this import id first: its file is
        # the one recorded and counted; this one goes.
        await _drop_unless_recorded(backends, tenant_id, served, key, imported)
    else:
        await forget_import(backends, replaced)
    return served


def _is_repeat(model: ModelRecord, file: AdapterFile, import_id: str | None) -> bool:
    if import_id is not None:
        return model.importedAdapter is not None and model.importedAdapter.importId == import_id
    served = model.served_import
    return served is not None and served.sha256 == hashlib.sha256(file.data).hexdigest()


async def _drop_unless_recorded(
    backends: ImportBackends, tenant_id: str, model: ModelRecord | None, key: str, imported: ImportedAdapter
) -> None:
    """Take back this delivery's stored file and reserved bytes unless the model records this very import
    (`importedAt` tells two deliveries of one file apart). Its file stays when the recorded import is another
    delivery of the same bytes: both wrote the one key, and the recorded one counted it."""
    recorded = model.importedAdapter if model is not None else None
    if recorded == imported:
        return
    shared = model is not None and recorded is not None and import_key(model.modelId, recorded) == key
    if not shared:
        await backends.store.delete(key)
    await release_storage(backends, tenant_id, imported.storedBytes)


async def _serve(
    backends: ImportBackends, tenant_id: str, model_id: str, key: str, imported: ImportedAdapter
) -> tuple[ModelRecord | None, ModelRecord]:
    """The one model write: (the model as it was, the model as it is now); (None, the model) when a twin
    delivery of the same import wrote it first. Conditional on the version read and on a status an import may
    replace, so a training that started meanwhile wins (`Conflict`)."""
    for _ in range(WRITE_ATTEMPTS):
        model, _spec = await importable_model(backends, tenant_id, model_id)
        if model.importedAdapter is not None and model.importedAdapter.importId == imported.importId:
            return None, model
        fields = {
            "status": ModelStatus.TRAINED.value,
            "adapterKey": key,
            "adapterTrainingId": imported.importId,
            "importedAdapter": imported,
        }
        try:
            served = await backends.models.update_fields(
                model_id,
                fields,
                expected_version=model.version,
                # An epoch chosen of an earlier training names none of the import's (it has none).
                remove=["epoch"],
                condition="#status = :current",
                values={":current": model.status.value},
            )
        except StaleWrite:
            continue  # written meanwhile: read it again and decide again
        return model, served
    raise StaleWrite(model_id)


async def forget_import(backends: ImportBackends, model: ModelRecord) -> None:
    """Delete the import `model` recorded (its stored file, and its bytes from the tenant's storage): called
    with the model as it was before another import replaced it. A generation queued before the replacement
    that has not loaded the old file yet fails with the adapter missing; one that has it cached still runs."""
    old = model.importedAdapter
    if old is None:
        return
    key = import_key(model.modelId, old)
    await backends.store.delete(key)
    # Its kohya download, if one was asked for. Such exports are not counted in the tenant's storage (they are
    # made on request, at most one per stored adapter): accepted.
    await backends.store.delete(adapter_export_key(key, AdapterFormat.KOHYA))
    await release_storage(backends, model.tenantId, old.storedBytes)
