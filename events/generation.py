"""`generation.requested`: the command a worker turns into images.

The limits here are the contract every producer (the API or a direct Kafka producer) must meet; the API
validates the same limits before it queues a job, so a request it accepts is never dead-lettered.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from events.envelope import TYPE_PREFIX, CloudEvent
from events.storage_keys import is_job_input_key, is_tenant_upload_image_key

GENERATION_REQUESTED = f"{TYPE_PREFIX}generation.requested.v1"

MIN_SIDE = 64
MAX_SIDE = 2048
SIDE_MULTIPLE = 8
MAX_OUTPUTS = 4
MAX_PROMPT_CHARS = 2000
MAX_STEPS = 50
MAX_GUIDANCE = 20.0
MAX_SEED = 2**32 - 1
MAX_ADAPTERS = 8
MAX_ADAPTER_SCALE = 2.0


class GenerationMode(StrEnum):
    """What kind of generation a job is."""

    TEXT_TO_IMAGE = "text-to-image"
    IMAGE_TO_IMAGE = "image-to-image"
    INPAINTING = "inpainting"


# Diffusers' defaults: image-to-image keeps some of the input's structure; inpainting repaints the masked area.
DEFAULT_STRENGTH = {GenerationMode.IMAGE_TO_IMAGE: 0.8, GenerationMode.INPAINTING: 1.0}


class OutputFormat(StrEnum):
    """Encodings a generation can be written in."""

    PNG = "png"
    JPEG = "jpeg"


class AdapterRef(BaseModel):
    """One LoRA adapter a generation applies, and with what weight."""

    model_config = ConfigDict(extra="forbid")

    modelId: str = Field(min_length=1, max_length=128, description="The LoRA model the adapter belongs to.")
    trainingId: str = Field(
        min_length=1,
        max_length=64,
        description="The training that produced it, or the import (`imp_…`) that brought it.",
    )
    key: str = Field(
        min_length=1,
        max_length=512,
        pattern=r"^(trainings/[A-Za-z0-9_-]+|models/[A-Za-z0-9_-]+/adapters/imp_[A-Za-z0-9]+)/[A-Za-z0-9_./-]+\.safetensors$",
        description="S3 key of the adapter's safetensors file (diffusers' LoRA format).",
    )
    scale: float = Field(default=1.0, ge=-MAX_ADAPTER_SCALE, le=MAX_ADAPTER_SCALE)
    epoch: str | None = Field(default=None, max_length=16, description="The checkpoint's epoch; null = final.")


class GenerationRequestedData(BaseModel):
    """The `data` of a generation.requested event: everything a worker needs, nothing it must look up."""

    model_config = ConfigDict(extra="forbid")

    jobId: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    mode: GenerationMode = GenerationMode.TEXT_TO_IMAGE
    modelId: str = Field(min_length=1, max_length=128, description="The model the user asked for.")
    baseModel: str = Field(min_length=1, max_length=128, description="Registry name of the base model.")
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    negativePrompt: str | None = Field(default=None, max_length=MAX_PROMPT_CHARS)
    width: int = Field(ge=MIN_SIDE, le=MAX_SIDE, multiple_of=SIDE_MULTIPLE)
    height: int = Field(ge=MIN_SIDE, le=MAX_SIDE, multiple_of=SIDE_MULTIPLE)
    guidanceScale: float = Field(ge=0.0, le=MAX_GUIDANCE)
    numOutputs: int = Field(ge=1, le=MAX_OUTPUTS)
    numInferenceSteps: int = Field(ge=1, le=MAX_STEPS)
    seed: int = Field(ge=0, le=MAX_SEED)
    outputFormat: OutputFormat = OutputFormat.PNG
    adapters: list[AdapterRef] = Field(
        default_factory=list,
        max_length=MAX_ADAPTERS,
        description="LoRA adapters mixed by weight; all must be trained on `baseModel`. Empty = the base model.",
    )
    initImageKey: str | None = Field(
        default=None,
        max_length=512,
        description="image-to-image and inpainting: S3 key of the input image, `width` x `height` PNG: the "
        "job's own `jobs/{jobId}/inputs/image.png` or the tenant's upload `uploads/{tenant}/{uploadId}/image.png`.",
    )
    maskImageKey: str | None = Field(
        default=None,
        max_length=512,
        description="inpainting: S3 key of the mask (white = repaint, black = keep), same size and key rules.",
    )
    strength: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="image-to-image and inpainting: how much to change (0 = keep the input). Default 0.8 for "
        "image-to-image, 1.0 for inpainting.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> GenerationRequestedData:
        if not self.prompt.strip():
            raise ValueError("prompt must not be blank")
        keys = [adapter.key for adapter in self.adapters]
        if len(set(keys)) != len(keys):
            raise ValueError("an adapter is listed twice; give it one combined scale")
        needs = {
            GenerationMode.TEXT_TO_IMAGE: (False, False),
            GenerationMode.IMAGE_TO_IMAGE: (True, False),
            GenerationMode.INPAINTING: (True, True),
        }[self.mode]
        for field, needed in zip(("initImageKey", "maskImageKey"), needs, strict=True):
            present = getattr(self, field) is not None
            if present != needed:
                raise ValueError(f"{field} is {'required' if needed else 'not allowed'} in mode {self.mode.value}")
        if self.mode is GenerationMode.TEXT_TO_IMAGE and self.strength is not None:
            raise ValueError("strength applies to image-to-image and inpainting only")
        return self

    @property
    def effective_strength(self) -> float:
        """The strength the job runs with (the mode's default when none was given)."""
        return DEFAULT_STRENGTH.get(self.mode, 1.0) if self.strength is None else self.strength

    def input_keys(self) -> list[str]:
        """The S3 keys of the images this job reads."""
        return [key for key in (self.initImageKey, self.maskImageKey) if key is not None]


class GenerationRequested(CloudEvent[GenerationRequestedData]):
    """CloudEvent `ai.lorafoundry.generation.requested.v1`, keyed by job id on the requests topic."""

    type: Literal["ai.lorafoundry.generation.requested.v1"] = GENERATION_REQUESTED

    @model_validator(mode="after")
    def _inputs_belong_to_the_job(self) -> GenerationRequested:
        # A producer may only point a job at its own inputs or its tenant's uploads, never at another
        # tenant's bytes: the worker reads whatever key the event names.
        for key in self.data.input_keys():
            if not (is_job_input_key(key, self.data.jobId) or is_tenant_upload_image_key(key, self.tenantid)):
                raise ValueError(
                    f"input image {key!r} is neither this job's input (jobs/{self.data.jobId}/inputs/...) "
                    f"nor an upload of tenant {self.tenantid!r} (uploads/{self.tenantid}/upl_.../image.png)"
                )
        return self
