"""Checking a LoRA file against a base model from its header alone (what helper I's import validation calls)."""

from __future__ import annotations

from dataclasses import dataclass

from infra.base_models import BaseModelSpec, Family


@dataclass(frozen=True)
class AdapterLimits:
    """What an imported adapter may be at most."""

    max_rank: int = 256
    max_bytes: int = 2 * 1024**3


@dataclass(frozen=True)
class AdapterSummary:
    """What a checked LoRA file is: its key naming (`diffusers`, `peft` or `kohya`), the family it fits, its rank
    (the largest of its layers'), how many layers it adapts, on which components (`unet` or `transformer`,
    `text_encoder`, `text_encoder_2`), and its tensors' dtype (`F16`, `BF16`, `F32`; `mixed` if several)."""

    naming: str
    family: Family
    rank: int
    layers: int
    components: tuple[str, ...]
    dtype: str


def check_adapter(
    data: bytes, spec: BaseModelSpec, limits: AdapterLimits | None = None, file_size: int | None = None
) -> AdapterSummary:
    """Check a LoRA file against `spec`'s layers: `data` is the whole file or only its first
    `safetensors_file.header_bytes_needed` bytes (then give `file_size`, the object's full size). Raises
    AdapterFileError: NOT_SAFETENSORS, TRUNCATED, UNSUPPORTED_DTYPE, TOO_LARGE, NO_LORA_KEYS, WRONG_FAMILY (naming
    the family the file fits), UNKNOWN_LAYERS (naming a few), SHAPE_MISMATCH (a layer and both shapes),
    RANK_TOO_LARGE."""
    raise NotImplementedError
