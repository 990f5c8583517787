"""The `ss_*` metadata kohya-ss/sd-scripts writes into a LoRA file, which AUTOMATIC1111, Forge and ComfyUI show
(base model, resolution, rank and alpha, steps, epochs, the trigger word as `ss_tag_frequency`, the weights' hash).

Values are strings, as in every safetensors `__metadata__`. The hashes are sd-scripts' own
(`library/train_util.py: precalculate_safetensors_hashes`): the file is written with only its `ss_*` metadata, then
`sshs_model_hash` is the sha256 of everything after the header (the tensors' bytes: the same whatever the
metadata, since the header does not move them) and `sshs_legacy_hash` the first 8 hex digits of the sha256 of the
64 KiB at offset 1 MiB of that file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

from infra.base_models import Family
from infra.lora_files.safetensors_file import Tensor, header_bytes_needed, write_file

# sd-scripts' `ss_base_model_version` and network module per family, and the modelspec architecture
# (Stability AI's model-spec 1.0.0, which sd-scripts also writes).
BASE_MODEL_VERSION = {Family.SD15: "sd_v1", Family.SDXL: "sdxl_base_v1-0", Family.FLUX: "flux1"}
NETWORK_MODULE = {Family.SD15: "networks.lora", Family.SDXL: "networks.lora", Family.FLUX: "networks.lora_flux"}
ARCHITECTURE = {
    Family.SD15: "stable-diffusion-v1/lora",
    Family.SDXL: "stable-diffusion-xl-v1-base/lora",
    Family.FLUX: "flux-1-dev/lora",
}


@dataclass(frozen=True)
class KohyaMetadata:
    """What a kohya-named download says about itself, filled from the model and training records (None: unknown,
    left out, as for an imported adapter's steps)."""

    family: Family
    base_model: str  # the base model's registry name (`ss_sd_model_name`)
    output_name: str  # the download's file name without `.safetensors`
    rank: int
    alpha: float
    resolution: int | None = None
    steps: int | None = None  # the training's total steps
    epoch: int | None = None  # the epoch this file is (the last one for a final adapter)
    epochs: int | None = None  # the training's epoch count
    trigger_word: str | None = None
    images: int | None = None  # training images, the trigger word's count in `ss_tag_frequency`
    comment: str | None = None
    created_at: str | None = None  # ISO 8601: `modelspec.date`

    def fields(self) -> dict[str, str]:
        """The metadata, without the hashes (`with_hashes` adds them from the tensors)."""
        values: dict[str, str | None] = {
            "ss_base_model_version": BASE_MODEL_VERSION[self.family],
            "ss_sd_model_name": self.base_model,
            "ss_v2": "False",
            "ss_network_module": NETWORK_MODULE[self.family],
            "ss_network_dim": str(self.rank),
            "ss_network_alpha": _number(self.alpha),
            "ss_output_name": self.output_name,
            "ss_resolution": f"({self.resolution}, {self.resolution})" if self.resolution else None,
            "ss_max_train_steps": _optional(self.steps),
            "ss_steps": _optional(self.steps),
            "ss_epoch": _optional(self.epoch),
            "ss_num_epochs": _optional(self.epochs),
            "ss_num_train_images": _optional(self.images),
            "ss_training_comment": self.comment,
            "ss_tag_frequency": (
                json.dumps({self.output_name: {self.trigger_word: self.images or 1}}) if self.trigger_word else None
            ),
            "modelspec.sai_model_spec": "1.0.0",
            "modelspec.architecture": ARCHITECTURE[self.family],
            "modelspec.implementation": "diffusers",
            "modelspec.title": self.output_name,
            "modelspec.resolution": f"{self.resolution}x{self.resolution}" if self.resolution else None,
            "modelspec.trigger_phrase": self.trigger_word,
            "modelspec.date": self.created_at,
        }
        return {key: value for key, value in values.items() if value is not None}


def _optional(value: int | None) -> str | None:
    return None if value is None else str(value)


def _number(value: float) -> str:
    """sd-scripts writes the alpha as Python prints it (`4.0`); an integral alpha keeps that form."""
    return str(float(value))


def model_hashes(tensors: Mapping[str, Tensor], metadata: Mapping[str, str]) -> dict[str, str]:
    """`sshs_model_hash` and `sshs_legacy_hash` as sd-scripts computes them (see the module docstring)."""
    data = write_file(tensors, {k: v for k, v in metadata.items() if k.startswith("ss_")})
    return {
        "sshs_model_hash": hashlib.sha256(data[header_bytes_needed(data) :]).hexdigest(),
        "sshs_legacy_hash": hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8],
    }


def with_hashes(tensors: Mapping[str, Tensor], metadata: KohyaMetadata) -> dict[str, str]:
    """The full `__metadata__` of a kohya download of `tensors`."""
    fields = metadata.fields()
    return {**fields, **model_hashes(tensors, fields)}
