"""What can go wrong in a worker's job, and the one table that turns it into the job's error code.

A job error is the job's own fault (a missing input, an unknown base model, an adapter that does not fit): the
job fails with a failure marker and the worker goes on. Anything else raised by the model code fails the job
with the worker's catch-all code. Infrastructure failures (S3, Kafka) are not caught here: they propagate, and
the consumer loop retries the record from the same offset.

The exception classes live here, free of torch, so the table can be read (and tested) without loading models;
the modules that raise them import them from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


class InputUnavailable(RuntimeError):
    """A generation's input image (or mask) does not exist."""


class InvalidInput(ValueError):
    """A modify job's input image or mask cannot be used."""


class BaseModelUnavailable(RuntimeError):
    """The weights of a base model cannot be found or loaded."""


class AdapterUnavailable(RuntimeError):
    """An adapter's file is missing, unreadable, or does not fit its base model."""


class TrainingDataMissing(RuntimeError):
    """None of the training's images can be read."""


# --- issue 16: captions ---
class CaptioningModelUnavailable(RuntimeError):
    """The operator's captioning model (settings.captioning_model) cannot be found or loaded."""


# --- end issue 16: captions ---


class GenerationCanceled(Exception):
    """A generation stopped between two denoising steps because its cancel was asked for: not a failure,
    so it is no job error (the worker writes `canceled.json`, not `failed.json`)."""

    def __init__(self, step: int) -> None:
        super().__init__(f"canceled after {step} denoising step(s)")
        self.step = step


# Looked up along the exception's class hierarchy, so a subclass gets its parent's code.
JOB_ERROR_CODES: Mapping[type, str] = {
    InputUnavailable: "input_unavailable",
    InvalidInput: "invalid_input",
    BaseModelUnavailable: "model_unavailable",
    AdapterUnavailable: "adapter_unavailable",
    TrainingDataMissing: "training_data_missing",
    CaptioningModelUnavailable: "captioning_model_unavailable",  # issue 16: captions
}

GENERATION_FAILED = "generation_failed"
TRAINING_FAILED = "training_failed"


@dataclass(frozen=True)
class JobFailureReason:
    """A failed job's error code and message; `expected` is false for the catch-all (worth a traceback)."""

    code: str
    message: str
    expected: bool


def failure_reason(exc: BaseException, unexpected_code: str) -> JobFailureReason:
    """The code and message a job fails with for `exc`: its entry in JOB_ERROR_CODES, else `unexpected_code`
    with the exception's type in the message."""
    for kind in type(exc).__mro__:
        code = JOB_ERROR_CODES.get(kind)
        if code is not None:
            return JobFailureReason(code, str(exc), expected=True)
    return JobFailureReason(unexpected_code, f"{type(exc).__name__}: {exc}", expected=False)
