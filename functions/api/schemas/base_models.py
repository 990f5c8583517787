"""The base-model catalog: what a model can be created on and generated with."""

from __future__ import annotations

from pydantic import BaseModel, Field


class SizeOut(BaseModel):
    """An image size in pixels."""

    width: int
    height: int


class SizesOut(BaseModel):
    """The image sizes a base model generates."""

    default: SizeOut = Field(description="A generation's size when the request gives none.")
    max: SizeOut = Field(description="The largest width and height a generation may ask for.")
    multiple: int = Field(description="Every width and height is a multiple of this (FLUX: 16; others: 8).")


class BaseModelOut(BaseModel):
    """One base model this deployment offers."""

    name: str = Field(description="What `baseModel` and `modelId` take.")
    aliases: list[str] = Field(description="Other names that reach the same model (LF_BASE_MODEL_ALIASES).")
    family: str = Field(description="sd-1_5, sd-xl or flux.1: adapters and compositions mix within one family only.")
    type: str = Field(description="The Scenario-style type of a LoRA model created on it.")
    default: bool = Field(description="Used when a model is created without `baseModel`.")
    defaultSize: SizeOut = Field(description="A generation's size when the request gives none.")
    maxSize: SizeOut = Field(description="The largest width and height a generation may ask for.")
    sizeMultiple: int = Field(description="Every width and height is a multiple of this (FLUX: 16; others: 8).")
    defaultSteps: int = Field(description="Inference steps when the request gives none.")
    defaultGuidanceScale: float
    capabilities: list[str] = Field(description="text-to-image, image-to-image, inpainting, training.")
    scenarioCapabilities: list[str] = Field(
        description="The same in the Scenario-style API's words: txt2img, img2img, inpaint (and training)."
    )
    modelTypes: list[str] = Field(description="The Scenario-style types a model created on it may have.")


class BaseModelList(BaseModel):
    """`GET /v1/base-models`."""

    data: list[BaseModelOut]
