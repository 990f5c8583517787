"""Realm-style images request and response bodies: `POST /images/generate`, `POST /images/modify`,
`GET /images/jobs/{jobId}`."""

from __future__ import annotations

from typing import Literal

from fastapi import UploadFile
from pydantic import BaseModel, ConfigDict, Field, model_validator

from events import generation as contract
from functions.api.schemas.common import ApiTime, Prompt, WebhookFields, WebhookSubscriptionOut
from functions.api.schemas.webhooks import DeliveryOut


class _GenerationFields(WebhookFields):
    """Fields every Realm-style images generation takes."""

    modelId: str = Field(
        min_length=1, max_length=128, description="A base model name, a trained model's id or a composition's id."
    )
    prompt: Prompt
    negativePrompt: str | None = Field(default=None, max_length=contract.MAX_PROMPT_CHARS)
    guidanceScale: float | None = Field(default=None, ge=0.0, le=contract.MAX_GUIDANCE)
    numOutputs: int = Field(default=1, ge=1, le=contract.MAX_OUTPUTS)
    numInferenceSteps: int | None = Field(default=None, ge=1, le=contract.MAX_STEPS)
    seed: int | None = Field(default=None, ge=0, le=contract.MAX_SEED, description="Random when omitted.")
    outputFormat: contract.OutputFormat = contract.OutputFormat.PNG


class GenerateImageRequest(_GenerationFields):
    """Text-to-image request, as the Realm-style images API documents it, plus optional `seed`, steps and format."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "modelId": "tiny-sd",
                "prompt": "A photorealistic portrait of a woman with cyberpunk neon background, high detail",
                "negativePrompt": "low quality, blurry, text, watermark, ugly",
                "width": 64,
                "height": 64,
                "guidanceScale": 7.5,
                "numOutputs": 1,
            }
        },
    )

    width: int | None = Field(
        default=None,
        ge=contract.MIN_SIDE,
        le=contract.MAX_SIDE,
        multiple_of=contract.SIDE_MULTIPLE,
        description="Defaults to the model's preferred size.",
    )
    height: int | None = Field(
        default=None,
        ge=contract.MIN_SIDE,
        le=contract.MAX_SIDE,
        multiple_of=contract.SIDE_MULTIPLE,
        description="Defaults to the model's preferred size.",
    )


class ModifyImageForm(_GenerationFields):
    """`POST /images/modify` (multipart): image-to-image, or inpainting when a `mask` is sent. The output has
    the image's size, fitted to the model (longest side within its maximum, sides multiples of 8)."""

    model_config = ConfigDict(extra="forbid")

    image: UploadFile | None = Field(default=None, description="The input image (JPEG, PNG or WebP).")
    mask: UploadFile | None = Field(
        default=None,
        description="Black and white, the image's size: white areas are repainted, black ones kept exactly.",
    )
    imageKey: str | None = Field(
        default=None,
        max_length=64,
        description="Instead of `image`: a key from POST /v1/uploads(/presigned), for images too big for a request.",
    )
    maskKey: str | None = Field(default=None, max_length=64, description="Instead of `mask`: an upload key.")
    strength: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="How much to change, 0..1 (0 returns the input). Default 0.8, or 1.0 with a mask.",
    )

    @model_validator(mode="after")
    def _one_source_each(self) -> ModifyImageForm:
        if (self.image is None) == (self.imageKey is None):
            raise ValueError("send the input image as the `image` file or as an `imageKey`, exactly one of them")
        if self.mask is not None and self.maskKey is not None:
            raise ValueError("send the mask as the `mask` file or as a `maskKey`, not both")
        return self


class JobAccepted(BaseModel):
    """202 body: the job to poll."""

    jobId: str
    status: Literal["queued"] = "queued"
    createdAt: ApiTime


class ImageOut(BaseModel):
    """One generated image."""

    url: str = Field(description="Presigned GET URL, valid for a limited time.")
    width: int
    height: int
    format: str


class JobErrorOut(BaseModel):
    """Why a job failed."""

    code: str
    message: str


class JobParameters(BaseModel):
    """The parameters the job runs with, defaults filled in."""

    width: int
    height: int
    guidanceScale: float
    numOutputs: int
    numInferenceSteps: int
    seed: int
    outputFormat: str
    negativePrompt: str | None = None
    strength: float | None = Field(default=None, description="image-to-image and inpainting only.")


class AdapterUsedOut(BaseModel):
    """A LoRA adapter a job applies."""

    modelId: str
    trainingId: str
    epoch: str | None = Field(default=None, description="The checkpoint used; null = the final adapter.")
    scale: float


class JobView(BaseModel):
    """`GET /images/jobs/{jobId}`: status in the Realm-style images API's words, images once completed, error
    once failed."""

    jobId: str
    status: Literal["queued", "processing", "completed", "failed"]
    type: str
    modelId: str
    prompt: str
    parameters: JobParameters
    adapters: list[AdapterUsedOut] = Field(default_factory=list, description="Empty: the base model alone.")
    createdAt: ApiTime
    updatedAt: ApiTime
    startedAt: ApiTime | None = None
    completedAt: ApiTime | None = None
    images: list[ImageOut] = Field(default_factory=list)
    error: JobErrorOut | None = None
    timings: dict[str, float] | None = None
    webhook: WebhookSubscriptionOut | None = None
    deliveries: list[DeliveryOut] = Field(default_factory=list, description="Webhook deliveries and attempts.")
    cancelRequested: bool | None = Field(
        default=None, description="Set once a cancel was asked of the running job: it stops at its next step."
    )
    queuePosition: int | None = Field(
        default=None, description="While queued: how many jobs (of every tenant) wait ahead of this one."
    )
    estimatedStartAt: ApiTime | None = Field(
        default=None,
        description="While queued: when the job should start, if each job ahead takes the typical time of this "
        "job's base model (its default steps at its typical step rate), one after another. A rough guide.",
    )
