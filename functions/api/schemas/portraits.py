"""Headshot bodies: styles per gender, and the portrait request that trains then generates."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator

from functions.api.schemas.common import ApiTime, WebhookFields, WebhookSubscriptionOut
from functions.api.schemas.models import TrainingParametersIn
from functions.api.schemas.webhooks import DeliveryOut

Gender = Literal["man", "woman"]
MAX_PORTRAIT_IMAGES = 20
MAX_STYLES = 10
MAX_CUSTOMIZATIONS_CHARS = 300


class StyleOut(BaseModel):
    """One style a portrait can be generated in."""

    id: str
    name: str
    gender: Gender


class StyleList(BaseModel):
    """`GET /v1/styles?gender=…`."""

    gender: Gender
    styles: list[StyleOut]


class CreatePortraitRequest(WebhookFields):
    """`POST /v1/portraits`: photos of one person, their gender, the styles wanted and their features."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "gender": "man",
                "styles": ["business", "outdoor"],
                "customizations": "wearing glasses, thick beard, mohawk haircut",
                "imageUrls": ["https://example.com/me-1.jpg", "https://example.com/me-2.jpg"],
            }
        },
    )

    gender: Gender
    styles: list[str] = Field(
        min_length=1,
        max_length=MAX_STYLES,
        description="Style ids of the gender's list, or keys of style images from POST /v1/uploads (the subject is "
        "painted into the image, image-to-image).",
    )
    customizations: str = Field(
        default="",
        max_length=MAX_CUSTOMIZATIONS_CHARS,
        description="Defining features separated by ', ' (eye colour, hair, glasses, beard...).",
    )
    imageUrls: list[HttpUrl] = Field(default_factory=list, max_length=MAX_PORTRAIT_IMAGES)
    imageKeys: list[str] = Field(
        default_factory=list, max_length=MAX_PORTRAIT_IMAGES, description="Keys from POST /v1/uploads (24 h)."
    )
    name: str | None = Field(default=None, max_length=200, description="Name of the model that is trained.")
    imagesPerStyle: int = Field(default=1, ge=1, le=4)
    parameters: TrainingParametersIn | None = Field(
        default=None, description="Scenario-style training parameters (extension); default: the high-quality preset."
    )

    @field_validator("customizations")
    @classmethod
    def _features(cls, value: str) -> str:
        features = [f.strip() for f in value.split(",")]
        if value.strip() and any(not f for f in features):
            raise ValueError("separate features with ', ' and leave none empty, e.g. 'wearing glasses, thick beard'")
        return ", ".join(f for f in features if f)

    @field_validator("styles")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a style is listed twice")
        return value

    @model_validator(mode="after")
    def _some_images(self) -> CreatePortraitRequest:
        total = len(self.imageUrls) + len(self.imageKeys)
        if total == 0:
            raise ValueError("send at least one photo in imageUrls (or imageKeys)")
        if total > MAX_PORTRAIT_IMAGES:
            raise ValueError(f"send at most {MAX_PORTRAIT_IMAGES} photos in all")
        return self


class PortraitStyleOut(BaseModel):
    """One chosen style: its generation job, and its images once done."""

    id: str
    name: str
    jobId: str
    status: str | None = None
    images: list[str] = Field(default_factory=list, description="Presigned URLs of the style's images.")


class PortraitView(BaseModel):
    """A portrait job: one thing to poll from the first photo to the last image."""

    portraitId: str
    id: str
    status: Literal["training", "generating", "completed", "failed", "canceled"]
    gender: Gender
    customizations: str
    modelId: str
    trainingId: str
    trainingStatus: str | None = None
    trainingProgress: float | None = Field(default=None, description="0..1 while training.")
    styles: list[PortraitStyleOut]
    createdAt: ApiTime
    updatedAt: ApiTime
    completedAt: ApiTime | None = None
    error: dict[str, str] | None = None
    webhook: WebhookSubscriptionOut | None = None
    deliveries: list[DeliveryOut] = Field(default_factory=list, description="Webhook deliveries and attempts.")
