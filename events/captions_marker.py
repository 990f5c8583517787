"""`trainings/{id}/captions.json`: the captions a training's captioning model gave its images. Pure."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class AutomaticCaptions(BaseModel):
    """Written once by the trainer, before its first step; the notification handler records each caption on its
    training image (`TrainingImageRecord.automaticCaptioning`), for the API to show."""

    model_config = ConfigDict(extra="forbid")

    trainingId: str = Field(min_length=1)
    captions: dict[str, str] = Field(description="The raw caption (trigger word not woven in) by training-data key.")
    createdAt: AwareDatetime
