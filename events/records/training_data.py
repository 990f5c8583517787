"""Training images of a model: one record per image, keyed (modelId, dataId); the bytes live in S3."""

from __future__ import annotations

from pydantic import Field

from events.lifecycle import JobError
from events.records.base import IsoTime, StoredRecord, ValidatedImage, now_iso
from events.states import UploadStatus


class TrainingImageRecord(StoredRecord, ValidatedImage):
    """One training image: pending while its presigned upload is awaited, then ready or rejected."""

    modelId: str = Field(min_length=1, description="The model the image trains (partition key).")
    dataId: str = Field(min_length=1, description="The image's id within the model (sort key).")
    tenantId: str = Field(min_length=1, description="The tenant the model belongs to.")
    status: UploadStatus = Field(description="pending (awaiting its upload), ready, or rejected.")
    key: str = Field(
        description="S3 key of its bytes: while pending, where the raw upload lands; once ready, the normalized image."
    )
    uploadId: str | None = Field(default=None, description="The presigned upload that brings its bytes.")
    name: str | None = Field(default=None, description="The file name the caller gave.")
    description: str | None = Field(
        default=None, max_length=1000, description="The caller's caption (the Scenario-style API's description)."
    )
    automaticCaptioning: str | None = Field(
        default=None, max_length=1000, description="The caption a training's captioning model gave it."
    )
    error: JobError | None = Field(default=None, description="Why it was rejected (the one failure model).")
    createdAt: IsoTime = Field(default_factory=now_iso, description="When the image was first recorded.")
    updatedAt: IsoTime = Field(default_factory=now_iso, description="When it was last written.")
