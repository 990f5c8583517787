"""Model records: one per model, scoped to its tenant, soft-deleted so history survives."""

from __future__ import annotations

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
