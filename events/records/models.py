"""Model records: one per model, scoped to its tenant, soft-deleted so history survives."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from events.records.base import IsoTime, StoredRecord, now_iso
from events.states import ModelStatus


class ConceptRef(BaseModel):
    """One LoRA a composition model blends in, with its weight."""

    model_config = ConfigDict(extra="forbid")

    modelId: str = Field(description="The LoRA model blended in.")
    scale: float = Field(description="Its weight (-2 to 2).")
    modelEpoch: str | None = Field(default=None, description="Which of its epochs, if not the final adapter.")


class AdapterOrigin(StrEnum):
    """Where the adapter a model serves came from."""

    TRAINING = "training"
    IMPORT = "import"


class ImportedAdapter(BaseModel):
    """A LoRA file imported into a model (`PUT /v1/models/{id}/adapter`), as it was checked and stored."""

    model_config = ConfigDict(extra="forbid")

    importId: str = Field(min_length=1, description="The import (`imp_…`): the adapter's `adapterTrainingId`.")
    format: str = Field(description="The key naming the file came in: diffusers, peft or kohya.")
    rank: int = Field(ge=1, description="The LoRA rank (the largest, if its layers differ).")
    layers: int = Field(ge=1, description="How many of the base model's layers it adapts.")
    bytes: int = Field(ge=0, description="The file's size as sent.")
    storedBytes: int = Field(ge=0, description="The stored (diffusers-named) file's size: what the quota counts.")
    sha256: str = Field(description="SHA-256 of the file as sent.")
    fileName: str | None = Field(default=None, description="The file name the caller gave.")
    importedAt: IsoTime = Field(description="When the model started serving it.")


class ModelRecord(StoredRecord):
    """A model: what it is, how it trains, and which adapter it serves once trained."""

    modelId: str = Field(min_length=1, description="The model's id (the table's key).")
    tenantId: str = Field(min_length=1, description="The tenant the model belongs to.")
    status: ModelStatus = Field(default=ModelStatus.NEW, description="Where the model is in its life.")
    version: int = Field(default=1, ge=1, description="Bumped by every write; conditional writes compare it.")
    createdAt: IsoTime = Field(default_factory=now_iso, description="When the model was created.")
    updatedAt: IsoTime = Field(default_factory=now_iso, description="When the model was last written.")
    name: str = Field(description="The model's display name.")
    description: str | None = Field(default=None, description="The caller's description.")
    baseModel: str = Field(description="The base model's name in the registry.")
    type: str = Field(description="The Scenario-style model type (e.g. `sd-1_5-lora`).")
    customModelType: str | None = Field(default=None, description="The custom-models API's reserved type.")
    tags: list[str] = Field(default_factory=list, description="The caller's tags.")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="Canonical training parameters the caller set on the model."
    )
    concepts: list[ConceptRef] | None = Field(default=None, description="A composition model's blended LoRAs.")
    epoch: str | None = Field(default=None, description="The epoch the model serves instead of its final adapter.")
    classSlug: str | None = Field(default=None, description="The Scenario-style class the model belongs to.")
    thumbnail: str | None = Field(default=None, description="The caller's thumbnail asset id.")
    promptEmbedding: str | None = Field(default=None, description="The Scenario-style prompt embedding.")
    negativePromptEmbedding: str | None = Field(default=None, description="The negative prompt embedding.")
    trainingId: str | None = Field(default=None, description="The current (or last) training of the model.")
    triggerWord: str | None = Field(default=None, description="The word that calls up the trained subject.")
    adapterKey: str | None = Field(default=None, description="S3 key of the adapter the model serves.")
    adapterTrainingId: str | None = Field(default=None, description="The training that wrote `adapterKey`.")
    lastTrainedAt: IsoTime | None = Field(default=None, description="When a training last succeeded.")
    deletedAt: IsoTime | None = Field(default=None, description="When the model was (soft-)deleted.")
    importedAdapter: ImportedAdapter | None = Field(
        default=None, description="The last LoRA file imported into the model (served while it is `adapterTrainingId`)."
    )

    @property
    def adapter_origin(self) -> AdapterOrigin | None:
        """Whether the adapter served came from a training or an import; None while the model has none.

        Derived, not stored: a training that succeeds after an import writes `adapterTrainingId` (its own id)
        without knowing about imports, and the import it replaced must then stop showing."""
        if not self.adapterKey or not self.adapterTrainingId:
            return None
        return AdapterOrigin.IMPORT if self.served_import is not None else AdapterOrigin.TRAINING

    @property
    def served_import(self) -> ImportedAdapter | None:
        """The imported adapter, if it is the one the model serves now."""
        imported = self.importedAdapter
        return imported if imported is not None and imported.importId == self.adapterTrainingId else None
