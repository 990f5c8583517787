"""Adapter downloads: a presigned URL to one LoRA `.safetensors` file, in the naming asked for."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from events.storage_keys import AdapterFormat
from functions.api.schemas.common import ApiTime


class AdapterDownload(BaseModel):
    """`GET /v1/models/{id}/adapter` and `GET /v1/models/{id}/trainings/{trainingId}/adapter`: where to fetch the
    file, until when, and what it is."""

    url: str = Field(description="A presigned GET URL of the file.")
    expiresAt: ApiTime = Field(description="When the URL stops working.")
    expiresIn: int = Field(ge=1, description="Seconds the URL is valid for from now.")
    format: AdapterFormat = Field(
        description="`diffusers` (what the service serves; diffusers' `load_lora_weights` reads it) or `kohya` "
        "(`lora_unet_…`/`lora_te…_…`, `.lora_down`/`.lora_up`/`.alpha`, with sd-scripts' `ss_*` metadata: what "
        "AUTOMATIC1111, Forge and ComfyUI load)."
    )
    epoch: str | None = Field(description="The epoch the file is (`000002`), or null for the final adapter.")
    fileName: str = Field(description="A name to save it under: `<model name>[-<epoch>].safetensors`.")
    bytes: int | None = Field(default=None, ge=0, description="The file's size.")
    source: Literal["training", "import"] = Field(description="Whether a training or an import made the adapter.")
    modelId: str
    trainingId: str = Field(description="The training (`trn_…`) or the import (`imp_…`) that made it.")
