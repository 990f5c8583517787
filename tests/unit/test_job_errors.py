"""The one table from a worker's exceptions to its jobs' error codes."""

from __future__ import annotations

import pytest

from workers.job_errors import (
    GENERATION_FAILED,
    JOB_ERROR_CODES,
    TRAINING_FAILED,
    AdapterUnavailable,
    BaseModelUnavailable,
    CaptioningModelUnavailable,
    InputUnavailable,
    InvalidInput,
    JobFailureReason,
    TrainingDataMissing,
    failure_reason,
)


@pytest.mark.parametrize(
    "error, code",
    [
        (InputUnavailable("input image jobs/j/inputs/image.png does not exist"), "input_unavailable"),
        (InvalidInput("input image is not a readable image"), "invalid_input"),
        (BaseModelUnavailable("unknown base model 'nope'"), "model_unavailable"),
        (AdapterUnavailable("adapter a.safetensors does not exist"), "adapter_unavailable"),
        (TrainingDataMissing("none of the training images exist any more"), "training_data_missing"),
        (CaptioningModelUnavailable("captioning model '/m' cannot be loaded"), "captioning_model_unavailable"),
    ],
)
def test_each_job_error_has_its_code_and_keeps_its_message(error: Exception, code: str) -> None:
    for unexpected in (GENERATION_FAILED, TRAINING_FAILED):
        assert failure_reason(error, unexpected) == JobFailureReason(code, str(error), expected=True)


def test_the_table_covers_exactly_the_job_errors_with_distinct_codes() -> None:
    assert set(JOB_ERROR_CODES) == {
        InputUnavailable,
        InvalidInput,
        BaseModelUnavailable,
        AdapterUnavailable,
        TrainingDataMissing,
        CaptioningModelUnavailable,
    }
    assert len(set(JOB_ERROR_CODES.values())) == len(JOB_ERROR_CODES)
    assert not {GENERATION_FAILED, TRAINING_FAILED} & set(JOB_ERROR_CODES.values())


def test_a_subclass_gets_its_parents_code() -> None:
    class CorruptAdapter(AdapterUnavailable):
        pass

    assert failure_reason(CorruptAdapter("bad header"), GENERATION_FAILED).code == "adapter_unavailable"


@pytest.mark.parametrize("unexpected", [GENERATION_FAILED, TRAINING_FAILED])
def test_anything_else_is_the_workers_catch_all_with_its_type_in_the_message(unexpected: str) -> None:
    reason = failure_reason(ZeroDivisionError("division by zero"), unexpected)
    assert reason == JobFailureReason(unexpected, "ZeroDivisionError: division by zero", expected=False)


def test_a_plain_value_error_is_not_an_invalid_input() -> None:
    # InvalidInput is a ValueError, but not every ValueError from the model code is the input's fault.
    assert failure_reason(ValueError("shape mismatch"), GENERATION_FAILED).code == GENERATION_FAILED
