"""Custom-models training and training-data bodies."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from functions.api.schemas.common import ApiTime, WebhookFields, WebhookSubscriptionOut
from functions.api.schemas.models import TrainingParametersIn
from functions.api.schemas.webhooks import DeliveryOut


class StartTrainingRequest(WebhookFields):
    """`POST /v1/models/{id}/trainings`: the custom-models API's preset knobs, or Scenario-style `parameters`."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"trainingStrength": 7, "trainingSpeed": "high_quality"}}
    )

    trainingStrength: int | None = Field(default=None, ge=0, le=10)
    trainingSpeed: Literal["fast", "high_quality"] | None = None
    parameters: TrainingParametersIn | None = None


class TrainingAccepted(BaseModel):
    """The custom-models API's answer: `{"trainingId"}` (plus where to poll)."""

    trainingId: str
    id: str
    status: str
    triggerWord: str


class TrainingProgressView(BaseModel):
    """How far a running training is."""

    stage: str
    step: int
    totalSteps: int
    progress: float = Field(description="0..1")
    epoch: int
    totalEpochs: int
    loss: float | None = None
    stepsPerSecond: float | None = None
    remainingTimeMs: int | None = None
    updatedAt: ApiTime


class TrainingEpochView(BaseModel):
    """A finished epoch: its checkpoint and sample images."""

    epoch: str
    step: int
    loss: float | None = None
    sampleUrls: list[str] = []


class TrainingView(BaseModel):
    """The custom-models API's training status (`status`, `triggerWord`) with the details a user watching it wants."""

    id: str
    trainingId: str
    modelId: str
    status: Literal["starting", "processing", "succeeded", "failed", "canceled"]
    triggerWord: str
    createdAt: ApiTime
    updatedAt: ApiTime
    startedAt: ApiTime | None = None
    completedAt: ApiTime | None = None
    cancelRequested: bool = False
    queuePosition: int | None = None
    progress: TrainingProgressView | None = None
    epochs: list[TrainingEpochView] = []
    parameters: dict[str, Any]
    error: dict[str, str] | None = None
    webhook: WebhookSubscriptionOut | None = None
    deliveries: list[DeliveryOut] = Field(default_factory=list, description="Webhook deliveries and attempts.")


class TrainingSummary(BaseModel):
    """One entry of the custom-models API's training list."""

    id: str
    status: str
    createdAt: ApiTime


class DataAccepted(BaseModel):
    """The custom-models API's answer to an upload: `{"dataId"}`."""

    dataId: str
    width: int
    height: int
    format: str


class DataItemOut(BaseModel):
    """One training image in a list. A presigned upload is `pending` until its bytes are validated, then
    `ready` or `rejected` (with `error`); only ready images are trained on."""

    dataId: str
    id: str
    status: Literal["pending", "ready", "rejected"] = "ready"
    width: int | None = None
    height: int | None = None
    format: str | None = None
    bytes: int | None = None
    name: str | None = None
    description: str = Field(default="", description="The caller's caption (what the image trains on).")
    automaticCaptioning: str = Field(default="", description="The caption a training's captioning model gave it.")
    error: dict[str, str] | None = None
    createdAt: ApiTime
    updatedAt: ApiTime


# A caption, with room in the training's prompt (events/training.py MAX_CAPTION) for the trigger word woven in.
MAX_IMAGE_DESCRIPTION = 800


class DescribeDataRequest(BaseModel):
    """`PATCH /v1/models/{id}/training-data/{dataId}`: the image's caption; "" or null removes it."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"example": {"description": "a photo of TOK sitting on a red sofa"}}
    )

    description: str | None = Field(max_length=MAX_IMAGE_DESCRIPTION)


class DataItemWithData(DataItemOut):
    """One training image with its bytes as a `data:` URL (the custom-models API)."""

    dataUrl: str
