"""Converting LoRA files between the namings: to what the service serves (diffusers) and to kohya's."""

from __future__ import annotations

from infra.base_models import BaseModelSpec
from infra.lora_files.kohya_metadata import KohyaMetadata


def to_diffusers(data: bytes, spec: BaseModelSpec) -> bytes:
    """A LoRA file in any naming (diffusers, peft, kohya; checked as `check_adapter` checks it) rewritten in the
    naming the generator serves: exactly the keys the trainer's `save_lora_weights` writes for `spec`'s family,
    kohya's alphas folded into the up weights (float32 arithmetic, stored back in the file's dtype). Raises
    AdapterFileError."""
    raise NotImplementedError


def to_kohya(data: bytes, spec: BaseModelSpec, metadata: KohyaMetadata) -> bytes:
    """A LoRA file (any naming) in kohya-ss naming (`lora_unet_…`, `lora_te…_…`, `.lora_down.weight`,
    `.lora_up.weight`, `.alpha`) with sd-scripts' `ss_*` metadata, as AUTOMATIC1111, Forge and ComfyUI load it.
    Raises AdapterFileError."""
    raise NotImplementedError
