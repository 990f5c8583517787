"""Model request and response bodies of the Realm-style, custom-models and Scenario-style APIs: one record, every
dialect's spelling.

Inputs accept each dialect's names for the same thing (`name`/`displayName`, `description`/`shortDescription`);
outputs carry all of them. The canonical forms are listed in docs/api-compat.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from events.records.models import ModelRecord
from events.training import (
    MAX_BATCH,
    MAX_EPOCHS,
    MAX_RANK,
    MAX_REPEATS,
    MAX_RESOLUTION,
    MAX_SAMPLE_PROMPTS,
    MAX_TRAIN_STEPS,
    MIN_RESOLUTION,
    LrScheduler,
)
from functions.api.schemas.base_models import SizesOut
from functions.api.schemas.common import ApiTime
from infra.base_models import Family

MAX_NAME = 200
MAX_DESCRIPTION = 2000
MAX_TAGS = 20
MAX_TAG = 50

# Scenario-style types this service trains or composes, each with its base-model family; everything else in that
# API's list is refused. A type is accepted on a base of its family only (functions/api/services/models.py).
TRAINABLE_TYPES = ("sd-1_5-lora", "sd-xl-lora", "flux.1-lora")
COMPOSITION_TYPES = ("sd-1_5-composition", "sd-xl-composition", "flux.1-composition")
SUPPORTED_TYPES = TRAINABLE_TYPES + COMPOSITION_TYPES
TYPE_FAMILIES: dict[str, Family] = {
    **{f"{family.value}-lora": family for family in Family},
    **{f"{family.value}-composition": family for family in Family},
}

# Scenario-style parameters that only make sense for voice cloning: refused, not silently dropped.
VOICE_PARAMETERS = ("age", "cloneType", "gender", "language", "removeBackgroundNoise", "voiceDescription")
# Accepted so Scenario-style clients work unchanged, but without effect here (docs/api-compat.md says why).
IGNORED_PARAMETERS = (
    "scaleLr",
    "wandbKey",
    "randomCropRatio",
    "randomCropScale",
    "sampleSourceImages",
    "validationFrequency",
)

# SDXL's step split: a training always trains the UNet, so 0 UNet steps (or a 0 ratio) can only mean "not given".
ZERO_IS_UNSET = ("numTextTrainSteps", "numUNetTrainSteps", "textEncoderTrainingRatio")


def _clean_tags(tags: list[str] | None) -> list[str] | None:
    if tags is None:
        return None
    cleaned: list[str] = []
    for tag in tags:
        tag = tag.strip()
        if not tag or len(tag) > MAX_TAG:
            raise ValueError(f"each tag must be 1 to {MAX_TAG} characters and not blank")
        if tag not in cleaned:
            cleaned.append(tag)
    return cleaned


Tags = Annotated[list[str] | None, Field(default=None, max_length=MAX_TAGS), AfterValidator(_clean_tags)]


class TrainingParametersIn(BaseModel):
    """Scenario-style `parameters` (every field optional). Each family applies its own: one only another family's
    trainer takes is accepted and ignored (events/usecases/training_params.py FAMILY_ONLY)."""

    model_config = ConfigDict(extra="forbid")

    learningRate: float | None = Field(default=None, gt=0, le=1e-2)
    learningRateUnet: float | None = Field(
        default=None, gt=0, le=1e-2, description="The UNet's rate: learningRate's other name."
    )
    learningRateTextEncoder: float | None = Field(default=None, ge=0, le=1e-2)
    maxTrainSteps: int | None = Field(default=None, ge=1, le=MAX_TRAIN_STEPS)
    rank: int | None = Field(default=None, ge=1, le=MAX_RANK)
    lrScheduler: LrScheduler | None = None
    lrWarmupSteps: int | None = Field(default=None, ge=0, le=MAX_TRAIN_STEPS)
    batchSize: int | None = Field(default=None, ge=1, le=MAX_BATCH)
    nbEpochs: int | None = Field(default=None, ge=1, le=MAX_EPOCHS)
    nbRepeats: int | None = Field(default=None, ge=1, le=MAX_REPEATS)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    resolution: int | None = Field(default=None, ge=MIN_RESOLUTION, le=MAX_RESOLUTION, multiple_of=8)
    conceptPrompt: str | None = Field(default=None, min_length=1, max_length=500)
    classPrompt: str | None = Field(default=None, min_length=1, max_length=500)
    priorLossWeight: float | None = Field(default=None, ge=0, le=10)
    numClassImages: int | None = Field(default=None, ge=0, le=200)
    randomCrop: bool | None = None
    samplePrompts: list[str] | None = Field(default=None, max_length=MAX_SAMPLE_PROMPTS)
    validationPrompt: str | None = Field(default=None, min_length=1, max_length=500)
    # The Realm-style API's `trainingParams` spelling of maxTrainSteps.
    steps: int | None = Field(default=None, ge=1, le=MAX_TRAIN_STEPS, description="Alias of maxTrainSteps.")
    # SDXL: the text encoders train the first numTextTrainSteps, the UNet the next numUNetTrainSteps.
    numTextTrainSteps: int | None = Field(default=None, ge=0, le=MAX_TRAIN_STEPS)
    numUNetTrainSteps: int | None = Field(default=None, ge=0, le=MAX_TRAIN_STEPS)
    textEncoderTrainingRatio: float | None = Field(
        default=None, ge=0, lt=1, description="SDXL, legacy: numTextTrainSteps = round(ratio x maxTrainSteps)."
    )
    # FLUX: which transformer blocks the adapter covers.
    optimizeFor: Literal["likeness", "all", "none"] | None = None
    # LoRA Foundry's extensions, every family.
    aspectRatioBuckets: bool | None = Field(
        default=None, description="Train at bucket sizes near each image's aspect ratio (default true)."
    )
    autoCaption: bool | None = Field(
        default=None,
        description="Caption images without a description with the deployment's captioning model (default: "
        "whether the deployment has one).",
    )

    # Accepted, without effect (see IGNORED_PARAMETERS).
    scaleLr: bool | None = None
    wandbKey: str | None = Field(default=None, max_length=40)
    randomCropRatio: float | None = None
    randomCropScale: float | None = None
    sampleSourceImages: list[str] | None = None
    validationFrequency: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _refuse_voice(cls, data: Any) -> Any:
        if isinstance(data, dict):
            voice = [name for name in VOICE_PARAMETERS if name in data]
            if voice:
                raise ValueError(
                    f"{', '.join(voice)}: voice-cloning parameters are not supported; "
                    "LoRA Foundry trains image models only"
                )
        return data

    @field_validator("samplePrompts")
    @classmethod
    def _prompts_not_blank(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not p.strip() or len(p) > 500 for p in value):
            raise ValueError("each sample prompt must be 1 to 500 characters and not blank")
        return value

    def applied(self) -> dict[str, Any]:
        """The fields that take effect, aliases folded in, unset ones left out: what is stored and trained on
        (so ignored fields such as the `wandbKey` secret are never kept nor shown)."""
        values = self.model_dump(exclude_none=True, exclude={*IGNORED_PARAMETERS, "steps", "learningRateUnet"})
        if self.steps is not None and self.maxTrainSteps is None:
            values["maxTrainSteps"] = self.steps
        if self.learningRateUnet is not None and self.learningRate is None:
            values["learningRate"] = self.learningRateUnet
        # 0 is these fields' unset value (seed 003's examples send it): no split, no UNet-only count.
        for name in ZERO_IS_UNSET:
            if values.get(name) == 0:
                values.pop(name)
        if self.validationPrompt is not None:
            values.pop("validationPrompt")
            values["samplePrompts"] = [*values.get("samplePrompts", []), self.validationPrompt]
        return values


def canonical_parameters(stored: dict[str, Any] | None) -> dict[str, Any]:
    """Stored parameters in canonical form. Records written before parameters were stored canonically may
    hold aliases and ignored fields (a `wandbKey` among them): fold and drop them on the way out too."""
    if not stored:
        return {}
    try:
        return TrainingParametersIn.model_validate(stored).applied()
    except ValueError:
        # Not valid any more (a limit tightened since): keep what applies, never an ignored field.
        return {name: value for name, value in stored.items() if name not in IGNORED_PARAMETERS}


class Concept(BaseModel):
    """One LoRA of a composition model (the Scenario-style API)."""

    model_config = ConfigDict(extra="forbid")

    modelId: str = Field(min_length=1, max_length=64)
    scale: float = Field(ge=-2, le=2)
    modelEpoch: str | None = Field(default=None, pattern=r"^\d{6}$")


class _NamedInput(BaseModel):
    """Name and description fields in every dialect's spelling; conflicting spellings are refused."""

    name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME)
    displayName: str | None = Field(default=None, min_length=1, max_length=MAX_NAME)
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION)
    shortDescription: str | None = Field(default=None, max_length=MAX_DESCRIPTION)

    @model_validator(mode="after")
    def _one_spelling(self) -> _NamedInput:
        if self.name and self.displayName and self.name != self.displayName:
            raise ValueError("name and displayName name the same thing and must be equal when both are given")
        if (
            self.description is not None
            and self.shortDescription is not None
            and self.description != self.shortDescription
        ):
            raise ValueError("description and shortDescription must be equal when both are given")
        for value in (self.name, self.displayName):
            if value is not None and not value.strip():
                raise ValueError("name must not be blank")
        return self

    @property
    def resolved_name(self) -> str | None:
        """The name, whichever spelling carried it."""
        return (self.name or self.displayName or "").strip() or None

    @property
    def resolved_description(self) -> str | None:
        """The description, whichever spelling carried it."""
        return self.description if self.description is not None else self.shortDescription


class CreateModelRequest(_NamedInput):
    """`POST /v1/models`: the Realm-style API (`name`, `description`, `baseModel`, `tags`), the custom-models API
    (`displayName`, `customModelType`) and the Scenario-style API (`type`)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "name": "My Custom Model",
                "description": "A model specialized for cyberpunk aesthetics",
                "baseModel": "tiny-sd",
                "tags": ["cyberpunk", "female", "photorealistic"],
            }
        },
    )

    baseModel: str | None = Field(default=None, min_length=1, max_length=128)
    tags: Tags = None
    type: str | None = Field(default=None, max_length=64)
    customModelType: str | None = Field(default=None, max_length=64, description="The custom-models API: reserved.")
    parameters: TrainingParametersIn | None = None
    concepts: list[Concept] | None = Field(default=None, max_length=10)


class _RenameInput(_NamedInput):
    """The name fields of an update, the custom-models API's rename spelling (`updatedDisplayName`) among them."""

    updatedDisplayName: str | None = Field(default=None, min_length=1, max_length=MAX_NAME)

    @model_validator(mode="after")
    def _one_new_name(self) -> _RenameInput:
        if self.updatedDisplayName is not None:
            if not self.updatedDisplayName.strip():
                raise ValueError("updatedDisplayName must not be blank")
            other = super().resolved_name
            if other is not None and other != self.updatedDisplayName.strip():
                raise ValueError("updatedDisplayName and name/displayName must be equal when both are given")
        return self

    @property
    def resolved_name(self) -> str | None:
        """The new name, whichever spelling carried it."""
        return (self.updatedDisplayName or "").strip() or super().resolved_name


class RenameModelRequest(_RenameInput):
    """`PATCH /v1/models/{id}`: the custom-models rename (`updatedDisplayName`); `name`/`displayName`/`tags` too."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"updatedDisplayName": "Summer Dresses"}})

    tags: Tags = None

    @model_validator(mode="after")
    def _has_a_change(self) -> RenameModelRequest:
        if not self.model_fields_set:
            raise ValueError("nothing to change: send updatedDisplayName (or name, description, tags)")
        return self


class UpdateModelRequest(_RenameInput):
    """`PUT /v1/models/{id}`: the Scenario-style update (and the custom-models rename, whose method that API leaves
    open). Only fields present change; `null` unsets where the Scenario-style API says so."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "name": "Cinematic Realism",
                "shortDescription": "Highly detailed cinematic scenes.",
                "type": "sd-1_5-lora",
                "parameters": {"maxTrainSteps": 300, "learningRate": 0.0001, "rank": 8, "nbEpochs": 3},
            }
        },
    )

    tags: Tags = None
    type: str | None = Field(default=None, max_length=64)
    parameters: TrainingParametersIn | None = None
    concepts: list[Concept] | None = Field(default=None, max_length=10)
    epoch: str | None = Field(default=None, pattern=r"^\d{6}$")
    classSlug: str | None = Field(default=None, max_length=200)
    thumbnail: str | None = Field(default=None, max_length=200)
    promptEmbedding: str | None = Field(default=None, max_length=2000)
    negativePromptEmbedding: str | None = Field(default=None, max_length=2000)


class ImportedAdapterOut(BaseModel):
    """The LoRA file imported into a model (`PUT /v1/models/{id}/adapter`), as it was checked."""

    importId: str = Field(description="The import: what predictions' `scaleConfigs` take as the trainingId.")
    format: str = Field(description="The key naming the file came in: diffusers, peft or kohya.")
    rank: int
    layers: int = Field(description="How many of the base model's layers it adapts.")
    bytes: int = Field(description="The file's size as sent.")
    sha256: str = Field(description="SHA-256 of the file as sent.")
    fileName: str | None = None
    importedAt: ApiTime


def imported_adapter_out(model: ModelRecord) -> ImportedAdapterOut | None:
    """The import the model serves now, if its adapter came from one."""
    imported = model.served_import
    if imported is None:
        return None
    return ImportedAdapterOut(**imported.model_dump(exclude={"storedBytes"}))


ADAPTER_ORIGIN_DESCRIPTION = "Where the adapter it serves came from: a training or an import; null while it has none."


class ModelOut(BaseModel):
    """A model as `POST`, `GET` and `PATCH` return it: the Realm-style fields plus the custom-models names."""

    modelId: str
    id: str = Field(description="Same as modelId (the custom-models API).")
    name: str
    displayName: str = Field(description="Same as name (the custom-models API).")
    description: str | None = None
    status: str = Field(description="Realm-style words: pending_training, training_queued, training, active, failed.")
    baseModel: str
    type: str
    tags: list[str]
    createdAt: ApiTime
    updatedAt: ApiTime
    lastTrainedAt: ApiTime | None = None
    triggerWord: str | None = None
    trainingId: str | None = Field(default=None, description="The latest training.")
    trainingImagesNumber: int = 0
    family: str | None = Field(default=None, description="Its base model's family (sd-1_5, sd-xl, flux.1).")
    capabilities: list[str] = Field(
        default_factory=list, description="Its base model's, in the Scenario-style words: txt2img, img2img, inpaint."
    )
    sizes: SizesOut | None = Field(default=None, description="The sizes its base model generates.")
    adapterOrigin: Literal["training", "import"] | None = Field(default=None, description=ADAPTER_ORIGIN_DESCRIPTION)
    importedAdapter: ImportedAdapterOut | None = Field(default=None, description="The imported file it serves.")


class ModelList(BaseModel):
    """The Realm-style API's list: `data` and `pagination`."""

    data: list[ModelOut]
    pagination: dict[str, int]


class TrainAccepted(BaseModel):
    """The Realm-style API's `POST /models/{id}/train` answer (202)."""

    modelId: str
    status: Literal["training_queued"] = "training_queued"
    trainingJobId: str
    trainingId: str = Field(description="Same as trainingJobId (the custom-models API).")
    estimatedCompletion: ApiTime
    dataIds: list[str]


class AssetOut(BaseModel):
    """A sample image of an epoch (the Scenario-style API)."""

    assetId: str
    url: str


class EpochOut(BaseModel):
    """One epoch of the model's latest training (the Scenario-style API)."""

    epoch: str
    assets: list[AssetOut] = []


class TrainingImageOut(BaseModel):
    """One training image as the Scenario-style API lists it."""

    id: str
    automaticCaptioning: str = ""
    createdAt: ApiTime
    description: str = ""
    downloadUrl: str
    name: str


class TrainingProgressOut(BaseModel):
    """The Scenario-style API's trainingProgress (timestamps in milliseconds)."""

    stage: Literal["pending", "queued-for-train", "starting-train", "running-train"]
    updatedAt: int
    position: int | None = None
    progress: float | None = None
    remainingTimeMs: int | None = None
    startedAt: int | None = None


class TrainingStatsOut(BaseModel):
    """The Scenario-style API's trainingStats (durations in seconds)."""

    startedAt: ApiTime | None = None
    endedAt: ApiTime | None = None
    queueDuration: float | None = None
    trainDuration: float | None = None


class ModelDetailOut(BaseModel):
    """The model object the Scenario-style `PUT /models/{id}` returns, with the Realm-style and custom-models names
    alongside."""

    id: str
    modelId: str
    capabilities: list[str]
    family: str | None = Field(default=None, description="Its base model's family (sd-1_5, sd-xl, flux.1).")
    sizes: SizesOut | None = Field(default=None, description="The sizes its base model generates.")
    collectionIds: list[str] = []
    createdAt: ApiTime
    updatedAt: ApiTime
    custom: bool = False
    exampleAssetIds: list[str] = []
    privacy: Literal["private"] = "private"
    source: Literal["other"] = "other"
    status: str = Field(description="Scenario-style words: new, training, trained, failed, training-canceled.")
    tags: list[str]
    trainingImagesNumber: int
    type: str
    name: str
    displayName: str
    shortDescription: str | None = None
    description: str | None = None
    baseModel: str
    ownerId: str
    modelKeyword: str | None = None
    parameters: dict[str, Any] = {}
    concepts: list[Concept] | None = None
    epoch: str | None = None
    epochs: list[EpochOut] = []
    trainingImages: list[TrainingImageOut] = []
    trainingProgress: TrainingProgressOut | None = None
    trainingStats: TrainingStatsOut | None = None
    classSlug: str | None = None
    thumbnail: dict[str, str] | None = None
    promptEmbedding: str | None = None
    negativePromptEmbedding: str | None = None
    adapterOrigin: Literal["training", "import"] | None = Field(default=None, description=ADAPTER_ORIGIN_DESCRIPTION)
    importedAdapter: ImportedAdapterOut | None = Field(default=None, description="The imported file it serves.")


class ModelEnvelope(BaseModel):
    """`{"model": {...}}` (the Scenario-style API)."""

    model: ModelDetailOut
