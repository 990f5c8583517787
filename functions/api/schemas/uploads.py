"""Uploads: the headshot API's image upload keys, and presigned uploads for files too big for a Lambda body."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from functions.api.schemas.common import ApiTime
from functions.api.schemas.images import JobErrorOut


class PresignedUploadRequest(BaseModel):
    """`POST /v1/uploads/presigned` (and the training-data variant): nothing is required."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=255, description="The file's name, kept for display.")


class PresignedPost(BaseModel):
    """Where and how to send the file: an HTML-form-style POST of `fields` plus the file as `file`."""

    url: str
    fields: dict[str, str]
    maxBytes: int


class UploadOut(BaseModel):
    """An upload and where it stands. `key` is what headshot requests take (`styles`, `imageKeys`)."""

    key: str
    uploadId: str
    status: Literal["pending", "ready", "rejected"]
    purpose: Literal["training-data", "image", "adapter"]
    expiresAt: ApiTime = Field(description="After this the key no longer works and the bytes are deleted (24 h).")
    url: str | None = Field(default=None, description="Presigned GET of the normalized image, once ready.")
    width: int | None = None
    height: int | None = None
    format: str | None = Field(default=None, description="The format sniffed from the uploaded bytes.")
    modelId: str | None = None
    dataId: str | None = None
    error: JobErrorOut | None = Field(default=None, description="Why the file was rejected.")
    upload: PresignedPost | None = Field(default=None, description="Presigned uploads: where to send the file.")
