"""Custom-models prediction bodies: `POST /predictions`, `GET /predictions/{id}`.

Field names are the custom-models API's own (snake_case beside camelCase), so a client written against it works
unchanged.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from events import generation as contract
from functions.api.schemas.common import ApiTime, Prompt, WebhookFields, WebhookSubscriptionOut
from functions.api.schemas.images import AdapterUsedOut, JobErrorOut
from functions.api.schemas.webhooks import DeliveryOut

MIN_PREDICTION_SIDE = 512
MAX_PREDICTION_SIDE = 1536
MAX_GUIDANCE = 10.0


class ScaleConfig(BaseModel):
    """One trained model, one of its trainings, and its weight in the mix."""

    model_config = ConfigDict(extra="forbid")

    modelId: str = Field(min_length=1, max_length=64)
    trainingId: str = Field(min_length=1, max_length=64)
    scale: float = Field(
        default=1.0,
        ge=-contract.MAX_ADAPTER_SCALE,
        le=contract.MAX_ADAPTER_SCALE,
        description="The adapter's weight: 0 switches it off, 1 is full strength, negative pushes away.",
    )


class ImageSize(BaseModel):
    """Output dimensions (the custom-models API: 512 to 1536 each)."""

    model_config = ConfigDict(extra="forbid")

    width: int = Field(ge=MIN_PREDICTION_SIDE, le=MAX_PREDICTION_SIDE, multiple_of=contract.SIDE_MULTIPLE)
    height: int = Field(ge=MIN_PREDICTION_SIDE, le=MAX_PREDICTION_SIDE, multiple_of=contract.SIDE_MULTIPLE)


class CreatePredictionRequest(WebhookFields):
    """`POST /v1/predictions`: several trained models mixed by weight in `scaleConfigs`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "scaleConfigs": {"1": {"scale": 0.8, "modelId": "abc123", "trainingId": "def456"}},
                "prompt": "A summer dress with floral pattern in style of FJA90AB",
                "image_size": {"width": 512, "height": 512},
                "num_images": 4,
                "output_format": "png",
                "guidance_scale": 7.5,
                "num_inference_steps": 50,
            }
        },
    )

    scaleConfigs: dict[str, ScaleConfig] = Field(
        min_length=1,
        max_length=contract.MAX_ADAPTERS,
        description="Models to mix, keyed by any label; each names one succeeded training of the model.",
    )
    prompt: Prompt = Field(description="Include a model's trigger word to bring out what it learned.")
    negative_prompt: str | None = Field(default=None, max_length=contract.MAX_PROMPT_CHARS)
    seed: int | None = Field(default=None, ge=0, le=contract.MAX_SEED, description="Same inputs, same images.")
    image_size: ImageSize | None = Field(default=None, description="Defaults to 512x512.")
    num_images: int = Field(default=1, ge=1, le=contract.MAX_OUTPUTS)
    output_format: contract.OutputFormat = contract.OutputFormat.PNG
    guidance_scale: float | None = Field(default=None, ge=0.0, le=MAX_GUIDANCE)
    num_inference_steps: int | None = Field(default=None, ge=1, le=contract.MAX_STEPS)

    @field_validator("scaleConfigs")
    @classmethod
    def _labels_are_short(cls, value: dict[str, ScaleConfig]) -> dict[str, ScaleConfig]:
        for label in value:
            if not 1 <= len(label) <= 64:
                raise ValueError("each scaleConfigs label must be 1 to 64 characters")
        return value


class PredictionAccepted(BaseModel):
    """202 body (the custom-models API's `predictionId`): the prediction to poll."""

    predictionId: str
    status: Literal["starting"] = "starting"
    createdAt: ApiTime


class PredictionView(BaseModel):
    """`GET /v1/predictions/{id}`: the custom-models API's `status` and `outputImages`, plus what the job ran with."""

    predictionId: str
    status: Literal["starting", "processing", "succeeded", "failed", "canceled"]
    outputImages: list[str] = Field(default_factory=list, description="Presigned URLs, once succeeded.")
    prompt: str
    scaleConfigs: dict[str, ScaleConfig]
    adapters: list[AdapterUsedOut] = Field(description="The adapters applied, with their scales.")
    baseModel: str
    seed: int
    image_size: dict[str, int] = Field(description="`width` and `height` of the images.")
    num_images: int
    output_format: str
    guidance_scale: float
    num_inference_steps: int
    createdAt: ApiTime
    updatedAt: ApiTime
    startedAt: ApiTime | None = None
    completedAt: ApiTime | None = None
    error: JobErrorOut | None = None
    timings: dict[str, float] | None = None
    webhook: WebhookSubscriptionOut | None = None
    deliveries: list[DeliveryOut] = Field(default_factory=list, description="Webhook deliveries and attempts.")
    cancelRequested: bool | None = Field(
        default=None, description="Set once a cancel was asked of the running prediction: it stops at its next step."
    )
    queuePosition: int | None = Field(
        default=None, description="While starting (queued): how many jobs (of every tenant) wait ahead of it."
    )
    estimatedStartAt: ApiTime | None = Field(
        default=None,
        description="While starting (queued): when it should start, if each job ahead takes the typical time of "
        "its base model (default steps at its typical step rate), one after another. A rough guide.",
    )
