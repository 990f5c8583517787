"""Each API dialect's status vocabulary covers every internal status, and the words are the documented ones."""

from __future__ import annotations

from enum import StrEnum

import pytest

from events.records.jobs import TrainingJob
from events.records.models import ModelRecord
from events.states import GenerationStatus, ModelStatus, PortraitStatus, TrainingStatus
from functions.api.dialects import custom_models, headshot, realm_style, scenario_style
from tests.support import training_request


@pytest.mark.parametrize(
    ("table", "enum"),
    [
        (realm_style.MODEL_STATUS, ModelStatus),
        (realm_style.JOB_STATUS, GenerationStatus),
        (custom_models.TRAINING_STATUS, TrainingStatus),
        (custom_models.PREDICTION_STATUS, GenerationStatus),
        (scenario_style.MODEL_STATUS, ModelStatus),
        (headshot.PORTRAIT_STATUS, PortraitStatus),
        (headshot.STYLE_STATUS, GenerationStatus),
    ],
)
def test_every_internal_status_has_a_word(table: dict[StrEnum, str], enum: type[StrEnum]) -> None:
    assert set(table) == set(enum)


def _model(status: ModelStatus, **fields: str) -> ModelRecord:
    return ModelRecord(
        modelId="mod_1", tenantId="tenant-a", name="m", baseModel="tiny-sd", type="sd-1_5-lora", status=status, **fields
    )


@pytest.mark.parametrize(
    ("model", "training_status", "word"),
    [
        (_model(ModelStatus.NEW), None, "pending_training"),
        (_model(ModelStatus.TRAINING), TrainingStatus.QUEUED, "training_queued"),
        (_model(ModelStatus.TRAINING), TrainingStatus.RUNNING, "training"),
        (_model(ModelStatus.TRAINED), TrainingStatus.SUCCEEDED, "active"),
        (_model(ModelStatus.FAILED), TrainingStatus.FAILED, "failed"),
        (_model(ModelStatus.TRAINING_CANCELED, adapterKey="k"), TrainingStatus.CANCELED, "active"),
        (_model(ModelStatus.TRAINING_CANCELED), TrainingStatus.CANCELED, "pending_training"),
    ],
)
def test_realm_style_model_words(model: ModelRecord, training_status: TrainingStatus | None, word: str) -> None:
    training = None
    if training_status is not None:
        training = TrainingJob(
            jobId="trn_1",
            tenantId="tenant-a",
            triggerWord="sks",
            request=training_request("trn_1"),
            status=training_status,
        )
    assert realm_style.model_status(model, training) == word
    assert realm_style.matches_status(model, training, word)
    assert realm_style.matches_status(model, training, model.status)


def test_the_model_list_filter_takes_both_vocabularies_once() -> None:
    assert realm_style.STATUS_FILTERS == (
        "pending_training",
        "training_queued",
        "training",
        "active",
        "failed",
        "new",
        "trained",
        "training-canceled",
    )


def test_a_canceled_generation_reads_failed_in_the_images_api_and_canceled_elsewhere() -> None:
    assert realm_style.JOB_STATUS[GenerationStatus.CANCELED] == "failed"
    assert custom_models.PREDICTION_STATUS[GenerationStatus.CANCELED] == "canceled"
    assert headshot.STYLE_STATUS[GenerationStatus.CANCELED] == "canceled"
