"""Adapter imports: the presigned upload of a LoRA file too big for a request body, and where it stands."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from functions.api.schemas.common import ApiTime
from functions.api.schemas.images import JobErrorOut
from functions.api.schemas.models import ModelOut
from functions.api.schemas.uploads import PresignedPost


class AdapterUploadRequest(BaseModel):
    """`POST /v1/models/{id}/adapter/presigned`: nothing is required."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=255, description="The file's name, kept on the import.")


class AdapterUploadOut(BaseModel):
    """A presigned LoRA file upload: `pending` until S3 announces the file and it is checked, then `ready` (the
    model serves it) or `rejected` (`error` names the problem; nothing of it is kept)."""

    uploadId: str
    modelId: str
    status: Literal["pending", "ready", "rejected"]
    expiresAt: ApiTime = Field(description="After this the upload is forgotten; a file sent later is not imported.")
    importId: str | None = Field(default=None, description="Once ready: the import the model serves.")
    error: JobErrorOut | None = Field(default=None, description="Why the file was refused.")
    upload: PresignedPost | None = Field(default=None, description="Where to send the file (the POST's answer only).")
    model: ModelOut | None = Field(default=None, description="Once ready: the model, serving the file.")
