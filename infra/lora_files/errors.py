"""The error a LoRA file that cannot be used raises: what is wrong with it, in words a user can act on."""

from __future__ import annotations

from enum import StrEnum


class AdapterProblem(StrEnum):
    """Why an adapter file was refused (the API's error `code`)."""

    NOT_SAFETENSORS = "adapter_not_safetensors"  # a pickle (.ckpt/.pt/.bin), a zip, or not a safetensors file at all
    TRUNCATED = "adapter_truncated"  # the header promises more bytes than the file has
    NO_LORA_KEYS = "adapter_no_lora_keys"  # a safetensors file, but no LoRA weights in it
    WRONG_FAMILY = "adapter_wrong_family"  # a LoRA of another model family than the model's base
    UNKNOWN_LAYERS = "adapter_unknown_layers"  # names layers the base model does not have
    SHAPE_MISMATCH = "adapter_shape_mismatch"  # a layer's weights do not fit the base model's layer
    RANK_TOO_LARGE = "adapter_rank_too_large"
    TOO_LARGE = "adapter_too_large"
    UNSUPPORTED_DTYPE = "adapter_unsupported_dtype"
    BAD_ALPHA = "adapter_bad_alpha"  # an alpha (kohya's tensor, diffusers' metadata) not a finite, sane scale


# How much of a key name a message quotes: a hostile file's names can be megabytes, and the message is stored
# (a DynamoDB item holds 400 KB at most) and shown.
NAME_SHOWN = 120


def shown(name: str) -> str:
    """A key name as a message quotes it: repr'd, cut to `NAME_SHOWN` characters with an ellipsis."""
    text = repr(name)
    return text if len(text) <= NAME_SHOWN else text[: NAME_SHOWN - 1] + "…"


class AdapterFileError(ValueError):
    """A LoRA file was refused: `problem` says why (the API's error code), the message says where."""

    def __init__(self, problem: AdapterProblem, message: str) -> None:
        super().__init__(message)
        self.problem = problem
        self.message = message
