"""`training.requested`: the command a trainer turns into a LoRA adapter, and the markers it writes.

The parameters in the event are concrete (every default already resolved by the API), so a trainer
never has to guess and a direct producer states exactly what it wants.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from events.envelope import TYPE_PREFIX, CloudEvent
from events.lifecycle import JobError

TRAINING_REQUESTED = f"{TYPE_PREFIX}training.requested.v1"

MAX_TRAIN_STEPS = 40_000  # the Scenario-style API: SD 1.5 and SDXL accept [0, 40000]
MAX_TRAINING_IMAGES = 200
MAX_EPOCHS = 100
MAX_RANK = 128
MAX_BATCH = 16
MAX_REPEATS = 100
MAX_SAMPLE_PROMPTS = 8
MIN_RESOLUTION = 64
MAX_RESOLUTION = 1024
MAX_CLASS_IMAGES = 200
MAX_CAPTION = 1000


class LrScheduler(StrEnum):
    """Learning-rate schedules of the Scenario-style API (names map onto diffusers' `get_scheduler`)."""

    CONSTANT = "constant"
    CONSTANT_WITH_WARMUP = "constant-with-warmup"
    COSINE = "cosine"
    COSINE_WITH_RESTARTS = "cosine-with-restarts"
    LINEAR = "linear"
    POLYNOMIAL = "polynomial"


class TrainingParameters(BaseModel):
    """Concrete hyper-parameters of one training (the Scenario-style API's names where it has one)."""

    model_config = ConfigDict(extra="forbid")

    learningRate: float = Field(gt=0, le=1e-2, description="UNet LoRA learning rate after warm-up.")
    learningRateTextEncoder: float = Field(
        ge=0, le=1e-2, description="Text-encoder LoRA learning rate; 0 leaves the text encoder frozen."
    )
    maxTrainSteps: int = Field(ge=1, le=MAX_TRAIN_STEPS)
    rank: int = Field(ge=1, le=MAX_RANK)
    lrScheduler: LrScheduler = LrScheduler.CONSTANT
    lrWarmupSteps: int = Field(default=0, ge=0, le=MAX_TRAIN_STEPS)
    batchSize: int = Field(ge=1, le=MAX_BATCH)
    nbEpochs: int = Field(ge=1, le=MAX_EPOCHS, description="Checkpoints: the steps are split into this many epochs.")
    nbRepeats: int = Field(ge=1, le=MAX_REPEATS)
    seed: int = Field(ge=0, le=2**32 - 1)
    resolution: int = Field(ge=MIN_RESOLUTION, le=MAX_RESOLUTION, multiple_of=8)
    conceptPrompt: str = Field(min_length=1, max_length=500, description="Instance prompt, with the trigger word.")
    classPrompt: str | None = Field(default=None, max_length=500)
    priorLossWeight: float = Field(default=1.0, ge=0, le=10)
    numClassImages: int = Field(default=0, ge=0, le=MAX_CLASS_IMAGES)
    randomCrop: bool = False
    samplePrompts: list[str] = Field(default_factory=list, max_length=MAX_SAMPLE_PROMPTS)
    sampleSteps: int = Field(default=10, ge=1, le=50)
    numTextTrainSteps: int = Field(
        default=0,
        ge=0,
        le=MAX_TRAIN_STEPS,
        description="SDXL (the Scenario-style API): the first this many of maxTrainSteps train the text encoders "
        "alone, the rest the UNet alone; 0 trains them together when learningRateTextEncoder > 0.",
    )
    optimizeFor: Literal["likeness", "all", "none"] | None = Field(
        default=None,
        description="FLUX (the Scenario-style API): which transformer blocks the adapter covers "
        "(workers/trainer/families/flux.py names the sets); unset: the base model's targets in every block.",
    )
    aspectRatioBuckets: bool = Field(
        default=True,
        description="Train each image at a bucket size near its own aspect ratio (about resolution^2 pixels); "
        "false crops every image square.",
    )
    autoCaption: bool = Field(
        default=False,
        description="Caption the images that have no caption with the operator's captioning model first.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> TrainingParameters:
        if self.nbEpochs > self.maxTrainSteps:
            raise ValueError("nbEpochs cannot exceed maxTrainSteps: every epoch needs at least one step")
        if self.numClassImages and not self.classPrompt:
            raise ValueError("numClassImages needs a classPrompt")
        if self.numTextTrainSteps and self.numTextTrainSteps >= self.maxTrainSteps:
            raise ValueError("numTextTrainSteps must be fewer than maxTrainSteps: the UNet needs steps too")
        if self.numTextTrainSteps and self.learningRateTextEncoder <= 0:
            raise ValueError("numTextTrainSteps needs a learningRateTextEncoder above 0")
        return self


class TrainingRequestedData(BaseModel):
    """The `data` of a training.requested event."""

    model_config = ConfigDict(extra="forbid")

    trainingId: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    modelId: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    baseModel: str = Field(min_length=1, max_length=128)
    triggerWord: str = Field(min_length=1, max_length=100)
    dataKeys: list[str] = Field(
        min_length=1,
        max_length=MAX_TRAINING_IMAGES,
        description="S3 keys of the normalized training images, fixed when the training was requested; all "
        "under the model's own `models/{modelId}/data/`.",
    )
    parameters: TrainingParameters
    captions: list[str | None] | None = Field(
        default=None,
        description="The prompt each image trains on, parallel to dataKeys, trigger word already woven in "
        "(events/captions.py); None for an image (or for all) trains it on parameters.conceptPrompt, or on an "
        "automatic caption when parameters.autoCaption is set.",
    )

    @model_validator(mode="after")
    def _captions_match(self) -> TrainingRequestedData:
        if self.captions is not None:
            if len(self.captions) != len(self.dataKeys):
                raise ValueError(f"captions has {len(self.captions)} entries for {len(self.dataKeys)} dataKeys")
            for index, caption in enumerate(self.captions):
                if caption is not None and not 1 <= len(caption) <= MAX_CAPTION:
                    raise ValueError(f"captions[{index}] must be 1 to {MAX_CAPTION} characters")
        return self

    @model_validator(mode="after")
    def _own_images(self) -> TrainingRequestedData:
        # A training reads only its model's images: a producer cannot point it at another model's (tenant's).
        prefix = f"models/{self.modelId}/data/"
        for index, key in enumerate(self.dataKeys):
            if not key.startswith(prefix) or ".." in key:
                raise ValueError(f"dataKeys[{index}] {key!r} is not an image of model {self.modelId} ({prefix}...)")
        return self


class TrainingRequested(CloudEvent[TrainingRequestedData]):
    """CloudEvent `ai.lorafoundry.training.requested.v1`, keyed by model id (a model never trains twice at once)."""

    type: Literal["ai.lorafoundry.training.requested.v1"] = TRAINING_REQUESTED


class TrainingStage(StrEnum):
    """Where a running training is (the Scenario-style API's trainingProgress stages, from the worker's side)."""

    STARTING = "starting-train"
    RUNNING = "running-train"


class TrainingProgress(BaseModel):
    """`trainings/{id}/progress.json`: overwritten as training goes; `seq` only ever grows."""

    model_config = ConfigDict(extra="forbid")

    trainingId: str
    seq: int = Field(ge=0, description="Monotonic: a notification with a lower seq than recorded is stale.")
    stage: TrainingStage
    step: int = Field(ge=0)
    totalSteps: int = Field(ge=1)
    epoch: int = Field(ge=0)
    totalEpochs: int = Field(ge=1)
    loss: float | None = None
    stepsPerSecond: float | None = Field(default=None, ge=0)
    remainingTimeMs: int | None = Field(default=None, ge=0)
    startedAt: AwareDatetime
    updatedAt: AwareDatetime


class EpochCheckpoint(BaseModel):
    """`trainings/{id}/checkpoints/{epoch}/epoch.json`: written after the epoch's adapter and samples."""

    model_config = ConfigDict(extra="forbid")

    trainingId: str
    epoch: str = Field(pattern=r"^\d{6}$")
    step: int = Field(ge=1)
    adapterKey: str
    sampleKeys: list[str] = Field(default_factory=list)
    loss: float | None = None
    createdAt: AwareDatetime


class TrainingRun(BaseModel):
    """How a training ran: its result.json less the training and model ids (what the training's job record
    keeps as `result`)."""

    model_config = ConfigDict(extra="forbid")

    adapterKey: str
    triggerWord: str
    epochs: list[str]
    steps: int
    finalLoss: float | None
    workerId: str
    attempt: int = Field(ge=1)
    resumedFromStep: int = Field(ge=0, description="0 for a run that started fresh.")
    startedAt: AwareDatetime
    completedAt: AwareDatetime
    trainSeconds: float = Field(ge=0)


class TrainingResult(TrainingRun):
    """`trainings/{id}/result.json`: written last, after the final adapter."""

    trainingId: str
    modelId: str


class TrainingFailure(BaseModel):
    """`trainings/{id}/failed.json`."""

    model_config = ConfigDict(extra="forbid")

    trainingId: str
    error: JobError
    workerId: str
    attempt: int = Field(ge=1)
    failedAt: AwareDatetime


class TrainingCanceled(BaseModel):
    """`trainings/{id}/canceled.json`: the worker stopped at a step boundary on request."""

    model_config = ConfigDict(extra="forbid")

    trainingId: str
    step: int = Field(ge=0)
    workerId: str
    canceledAt: AwareDatetime


def epoch_name(index: int) -> str:
    """The Scenario-style API's epoch ids: "000001" for the first."""
    return f"{index:06d}"
