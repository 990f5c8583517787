"""Base models an operator registered at run time (the base-models table), on top of the deployment's settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from events.records.base import IsoTime, StoredRecord, now_iso

BASE_MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


class RegisteredBaseModelRecord(StoredRecord):
    """One registered base model: where its weights are, its family, and for a single file its configuration."""

    name: str = Field(pattern=BASE_MODEL_NAME_PATTERN, description="The name requests use (hash key).")
    source: str = Field(min_length=1, description="A diffusers folder or s3:// prefix, or one .safetensors file.")
    family: Literal["sd-1_5", "sd-xl", "flux.1"]
    config: str | None = Field(default=None, description="A single file's configuration folder (local or s3://).")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    createdAt: IsoTime = Field(default_factory=now_iso)
    updatedAt: IsoTime = Field(default_factory=now_iso)
