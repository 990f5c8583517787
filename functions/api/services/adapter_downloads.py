"""Adapter downloads: which stored file a model's or a training's adapter (or one of its epochs) is, and a presigned
URL to it in the naming asked for.

The diffusers form is the stored file itself. The kohya form is made once, beside it
(`adapter_export_key`): the source key's bytes never change (every training and import writes keys of its own),
so a conversion stored once serves every later download. It is converted here, torch-free (infra/lora_files/), in a
thread so the event loop keeps serving.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from events.records.jobs import TrainingJob
from events.records.models import ModelRecord
from events.storage_keys import AdapterFormat, adapter_export_key
from functions.api.errors import ApiError
from functions.api.schemas.adapter_files import AdapterDownload
from functions.api.services.trainings import require_training
from infra.base_models import BaseModelSpec
from infra.lora_files.convert import to_kohya
from infra.lora_files.errors import AdapterFileError
from infra.lora_files.kohya_metadata import KohyaMetadata
from infra.runtime import ServiceContext

SAFETENSORS_TYPE = "application/octet-stream"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class AdapterSource:
    """One stored adapter file (diffusers naming) and what its kohya metadata says about it."""

    key: str
    model: ModelRecord
    training_id: str  # a training (`trn_…`) or an import (`imp_…`)
    from_import: bool
    epoch: str | None
    spec: BaseModelSpec
    training: TrainingJob | None = None

    @property
    def file_name(self) -> str:
        """`<model name or id>[-<epoch>].safetensors`, in characters every file system takes."""
        stem = _UNSAFE.sub("_", self.model.name).strip("._-") or self.model.modelId
        return f"{stem}-{self.epoch}.safetensors" if self.epoch else f"{stem}.safetensors"

    def kohya_metadata(self) -> KohyaMetadata:
        """The `ss_*` fields from the records: a training's parameters, or an import's rank (steps and epochs
        unknown: left out). Written once, at the first kohya download (`adapter_export_key`): a later rename
        or trigger word change shows in the downloaded file's name, not in these fields."""
        output_name = self.file_name.removesuffix(".safetensors")
        common = dict(family=self.spec.family, base_model=self.spec.name, output_name=output_name)
        training = self.training
        if training is None:
            imported = self.model.served_import
            rank = imported.rank if imported else 1
            return KohyaMetadata(
                **common,  # type: ignore[arg-type]
                rank=rank,
                alpha=float(rank),
                trigger_word=self.model.triggerWord,
                comment=f"LoRA Foundry import {self.training_id} of model {self.model.modelId}",
                created_at=imported.importedAt if imported else None,
            )
        parameters = training.request.parameters
        epoch_record = training.epochs.get(self.epoch) if self.epoch else None
        steps = epoch_record.step if epoch_record else (training.result.steps if training.result else None)
        return KohyaMetadata(
            **common,  # type: ignore[arg-type]
            rank=parameters.rank,
            alpha=float(parameters.rank),  # the trainer's peft lora_alpha is the rank
            resolution=parameters.resolution,
            steps=steps or parameters.maxTrainSteps,
            epoch=int(self.epoch) if self.epoch else parameters.nbEpochs,
            epochs=parameters.nbEpochs,
            trigger_word=training.triggerWord,
            images=len(training.dataIds or training.request.dataKeys) or None,
            comment=f"LoRA Foundry training {training.jobId} of model {self.model.modelId}",
            created_at=epoch_record.createdAt if epoch_record else training.updatedAt,
        )


def normalize_epoch(epoch: str | None) -> str | None:
    """An epoch as the records key it (`000002`); `2` is taken too."""
    return None if epoch is None else epoch.zfill(6)


def _spec(context: ServiceContext, model: ModelRecord) -> BaseModelSpec:
    spec = context.base_models.get(model.baseModel)
    if spec is None:
        raise ApiError(409, "base_model_unavailable", f"base model {model.baseModel!r} is not served here")
    return spec


def _unknown_epoch(epoch: str, owner: str, training: TrainingJob | None) -> ApiError:
    known = ", ".join(sorted(training.epochs)) if training and training.epochs else "none"
    return ApiError(404, "unknown_epoch", f"epoch {epoch!r} of {owner} does not exist; it has: {known}", field="epoch")


async def model_source(context: ServiceContext, model: ModelRecord, epoch: str | None) -> AdapterSource:
    """The adapter a model serves (its chosen epoch, else its final one), or the asked epoch of its training:
    409 while it has none (untrained, no import), 404 for an epoch its training does not have (an import has
    none)."""
    if not model.adapterKey or not model.adapterTrainingId:
        raise ApiError(
            409, "adapter_not_ready", f"model {model.modelId!r} has no adapter yet: train it or import a LoRA file"
        )
    spec = _spec(context, model)
    if model.served_import is not None:
        if epoch is not None:
            raise ApiError(
                404, "unknown_epoch", f"model {model.modelId!r} serves an imported file, which has no epochs", "epoch"
            )
        return AdapterSource(model.adapterKey, model, model.adapterTrainingId, True, None, spec)
    training = await context.jobs.get_as(model.adapterTrainingId, TrainingJob)
    chosen = epoch or model.epoch
    if chosen is None:
        return AdapterSource(model.adapterKey, model, model.adapterTrainingId, False, None, spec, training)
    if training is None or chosen not in training.epochs:
        raise _unknown_epoch(chosen, f"model {model.modelId!r}", training)
    return AdapterSource(training.epochs[chosen].adapterKey, model, training.jobId, False, chosen, spec, training)


async def training_source(
    context: ServiceContext, tenant_id: str, model: ModelRecord, training_id: str, epoch: str | None
) -> AdapterSource:
    """A training's final adapter (409 until it succeeded) or one of its finished epochs (404 if it has no such
    epoch yet)."""
    training = await require_training(context, tenant_id, model.modelId, training_id)
    spec = _spec(context, model)
    if epoch is not None:
        if epoch not in training.epochs:
            raise _unknown_epoch(epoch, f"training {training_id!r}", training)
        return AdapterSource(training.epochs[epoch].adapterKey, model, training_id, False, epoch, spec, training)
    if not training.adapterKey:
        raise ApiError(
            409,
            "adapter_not_ready",
            f"training {training_id!r} has no final adapter ({training.status.value}); its finished epochs can be "
            "downloaded with ?epoch=",
        )
    return AdapterSource(training.adapterKey, model, training_id, False, None, spec, training)


async def _kohya_file(context: ServiceContext, source: AdapterSource) -> tuple[str, int]:
    """The kohya export's key and size, converting and storing it the first time."""
    key = adapter_export_key(source.key, AdapterFormat.KOHYA)
    if (size := await context.store.size(key)) is not None:
        return key, size
    source_size = await context.store.size(source.key)
    limit = context.settings.max_adapter_export_convert_bytes
    if source_size is not None and source_size > limit:
        # Converting takes about 5x the file in the API's memory (infra/settings.py). A trainer-side export of
        # big trained adapters would lift this for trainings (a possible follow-up).
        raise ApiError(
            409,
            "adapter_export_unavailable",
            f"the adapter has {source_size} bytes; its kohya form is made on request only up to {limit}: download "
            "it with format=diffusers (the stored file itself)",
            field="format",
        )
    data = await context.store.get_bytes(source.key)
    if data is None:
        raise ApiError(409, "adapter_not_ready", f"the adapter file of {source.training_id!r} is not stored (yet)")
    try:
        converted = await asyncio.to_thread(to_kohya, data, source.spec, source.kohya_metadata())
    except AdapterFileError as exc:
        raise ApiError(
            409, "adapter_not_convertible", f"the stored adapter cannot be converted: {exc.message}"
        ) from exc
    await context.store.put_bytes(key, converted, SAFETENSORS_TYPE)
    return key, len(converted)


async def download(context: ServiceContext, source: AdapterSource, fmt: AdapterFormat) -> AdapterDownload:
    """A presigned URL to `source` in `fmt`, with what the file is."""
    if fmt is AdapterFormat.KOHYA:
        key, size = await _kohya_file(context, source)
    else:
        key, size = source.key, await context.store.size(source.key)
        if size is None:
            raise ApiError(409, "adapter_not_ready", f"the adapter file of {source.training_id!r} is not stored (yet)")
    expiry = context.settings.presign_expiry_seconds
    url = await context.store.presign_get(key, expiry, file_name=source.file_name)
    return AdapterDownload(
        url=url,
        expiresAt=(datetime.now(UTC) + timedelta(seconds=expiry)).isoformat(),
        expiresIn=expiry,
        format=fmt,
        epoch=source.epoch,
        fileName=source.file_name,
        bytes=size,
        source="import" if source.from_import else "training",
        modelId=source.model.modelId,
        trainingId=source.training_id,
    )
