"""Upload records: an image a client sends (directly, or to a presigned URL), validated once, kept a while."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from events.lifecycle import JobError
from events.records.base import IsoTime, StoredRecord, ValidatedImage, now_iso
from events.states import UploadStatus


class UploadPurpose(StrEnum):
    """What an upload is for: a model's training image, or a free-standing image key (the headshot API)."""

    TRAINING_DATA = "training-data"
    IMAGE = "image"
    ADAPTER = "adapter"  # a LoRA file for a model (`POST /v1/models/{id}/adapter/presigned`)


class UploadRecord(StoredRecord, ValidatedImage):
    """One upload; `expiresAt` (epoch seconds) is DynamoDB's TTL, and reads treat an expired one as gone."""

    uploadId: str = Field(min_length=1, description="The upload's id (the headshot API's image `key`).")
    tenantId: str = Field(min_length=1, description="The tenant who uploaded.")
    purpose: UploadPurpose = Field(description="A model's training image, or a free-standing image.")
    status: UploadStatus = Field(description="pending until its bytes are validated, then ready or rejected.")
    name: str | None = Field(default=None, description="The file name the caller gave.")
    modelId: str | None = Field(default=None, description="Training data: the model the image is for.")
    dataId: str | None = Field(default=None, description="Training data: the training image it stands for.")
    key: str | None = Field(default=None, description="S3 key of the normalized image, once ready.")
    error: JobError | None = Field(default=None, description="Why it was rejected (the one failure model).")
    createdAt: IsoTime = Field(default_factory=now_iso, description="When the upload was recorded.")
    updatedAt: IsoTime = Field(default_factory=now_iso, description="When it was last written.")
    expiresAt: int = Field(default=0, ge=0, description="When it expires (epoch seconds; set on creation).")
