"""Typed stored records: they survive the DynamoDB item round trip, the kind picks the job class, and nothing
undeclared can be stored (whole records or partial updates). No network: the repositories' writes go to a fake."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError

from events.generation import GenerationRequestedData
from events.lifecycle import JobError, JobLifecycleData
from events.records import (
    DeliveryRecord,
    EpochRecord,
    GenerationJob,
    IdempotencyRecord,
    ModelRecord,
    PortraitJob,
    PortraitStyle,
    StoredResponse,
    TrainingJob,
    UploadPurpose,
    UploadRecord,
    parse_job,
)
from events.states import GenerationStatus, IdempotencyStatus, JobKind, TrainingStatus, UploadStatus
from events.training import TrainingParameters, TrainingRequestedData
from infra.repositories.dynamo import from_item, record_item
from infra.repositories.jobs import JobRepository
from infra.repositories.models import ModelRepository
from infra.repositories.uploads import UploadRepository

GENERATION_REQUEST = GenerationRequestedData(
    jobId="job_1",
    modelId="mod_1",
    baseModel="sd15",
    prompt="a cat",
    width=512,
    height=512,
    guidanceScale=7.5,
    numOutputs=1,
    numInferenceSteps=20,
    seed=1,
)
TRAINING_REQUEST = TrainingRequestedData(
    trainingId="trn_1",
    modelId="mod_1",
    baseModel="sd15",
    triggerWord="sks",
    dataKeys=["models/mod_1/data/d1/abc.png"],
    parameters=TrainingParameters(
        learningRate=1e-4,
        learningRateTextEncoder=5e-5,
        maxTrainSteps=100,
        rank=4,
        batchSize=1,
        nbEpochs=2,
        nbRepeats=1,
        seed=1,
        resolution=512,
        conceptPrompt="sks",
    ),
)


def _round_trip(record: Any) -> dict[str, Any]:
    return from_item(record_item(record))


def test_a_generation_job_survives_the_item_round_trip() -> None:
    job = GenerationJob(
        jobId="job_1",
        tenantId="t1",
        modelId="mod_1",
        request=GENERATION_REQUEST,
        error=JobError(code="boom", message="it broke"),
        publishedEvents={"failed"},
        leaseExpiresAt=1700000000.25,
    )
    item = record_item(job)
    assert item["publishedEvents"] == {"SS": ["failed"]}  # a string set, as `ADD publishedEvents` writes it
    assert "completedAt" not in item  # None is left out
    back = parse_job(from_item(item))
    assert back == job
    assert back.error == JobError(code="boom", message="it broke")  # the one failure model, same JSON shape


def test_a_training_job_with_epochs_survives_the_round_trip() -> None:
    job = TrainingJob(
        jobId="trn_1",
        tenantId="t1",
        modelId="mod_1",
        triggerWord="sks",
        request=TRAINING_REQUEST,
        epochs={"000001": EpochRecord(step=50, adapterKey="a", loss=0.125, createdAt="2026-01-01T00:00:00+00:00")},
    )
    assert parse_job(_round_trip(job)) == job


@pytest.mark.parametrize(
    ("kind", "cls"),
    [(JobKind.GENERATION, GenerationJob), (JobKind.TRAINING, TrainingJob), (JobKind.PORTRAIT, PortraitJob)],
)
def test_the_kind_picks_the_record_class(kind: JobKind, cls: type) -> None:
    records = {
        JobKind.GENERATION: GenerationJob(jobId="j", tenantId="t", request=GENERATION_REQUEST),
        JobKind.TRAINING: TrainingJob(jobId="j", tenantId="t", triggerWord="sks", request=TRAINING_REQUEST),
        JobKind.PORTRAIT: PortraitJob(
            jobId="j",
            tenantId="t",
            trainingId="trn_1",
            gender="woman",
            styles=[PortraitStyle(id="s", name="S", prompt="p", jobId="job_x_0")],
        ),
    }
    parsed = parse_job(_round_trip(records[kind]))
    assert type(parsed) is cls
    assert parsed.kind is kind


def test_an_item_without_a_kind_is_a_generation() -> None:
    item = _round_trip(GenerationJob(jobId="j", tenantId="t", request=GENERATION_REQUEST))
    del item["kind"]
    assert isinstance(parse_job(item), GenerationJob)


def test_a_status_of_another_kind_is_refused() -> None:
    item = _round_trip(TrainingJob(jobId="j", tenantId="t", triggerWord="sks", request=TRAINING_REQUEST))
    item["status"] = GenerationStatus.PROCESSING.value
    with pytest.raises(ValidationError):
        parse_job(item)
    assert parse_job({**item, "status": "running"}).status is TrainingStatus.RUNNING


def test_an_undeclared_field_is_refused() -> None:
    item = _round_trip(GenerationJob(jobId="j", tenantId="t", request=GENERATION_REQUEST))
    with pytest.raises(ValidationError, match="surprise"):
        parse_job({**item, "surprise": 1})
    with pytest.raises(ValidationError):
        ModelRecord(modelId="m", tenantId="t", name="n", baseModel="sd15", type="sd-1_5-lora", surprise=1)


def test_other_records_round_trip() -> None:
    upload = UploadRecord(uploadId="u", tenantId="t", purpose=UploadPurpose.IMAGE, status=UploadStatus.PENDING)
    assert UploadRecord.model_validate(_round_trip(upload)) == upload
    claim = IdempotencyRecord(
        scope="s",
        fingerprint="f",
        status=IdempotencyStatus.COMPLETED,
        expiresAt=10,
        response=StoredResponse(status=201, headers={"a": "b"}, body="{}"),
    )
    assert IdempotencyRecord.model_validate(_round_trip(claim)) == claim
    delivery = DeliveryRecord(
        jobId="j", deliveryId="d", tenantId="t", event="completed", url="https://x", body="{}", createdAt="c"
    )
    assert DeliveryRecord.model_validate(_round_trip(delivery)) == delivery


class _RefusingDynamo:
    """Any call reaching the table fails the test: the refusal must come first."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the table was called ({name}) with an undeclared field")


@pytest.mark.parametrize(
    "write",
    [
        lambda: JobRepository(_RefusingDynamo(), "jobs").update_fields("j", {"surprise": 1}),
        lambda: JobRepository(_RefusingDynamo(), "jobs").advance("j", TrainingStatus.FAILED, {"surprise": 1}),
        # `scaleConfigLabels` is a generation's: a training may not carry it.
        lambda: JobRepository(_RefusingDynamo(), "jobs").advance("j", TrainingStatus.FAILED, {"scaleConfigLabels": []}),
        lambda: JobRepository(_RefusingDynamo(), "jobs").update_fields("j", {}, remove=["surprise"]),
        lambda: ModelRepository(_RefusingDynamo(), "models").update_fields("m", {"surprise": 1}),
        lambda: UploadRepository(_RefusingDynamo(), "uploads").settle("u", UploadStatus.READY, {"surprise": 1}),
    ],
)
def test_a_partial_update_naming_an_undeclared_field_is_refused(write: Any) -> None:
    with pytest.raises(ValueError, match="not a field"):
        asyncio.run(write())


def test_lifecycle_status_is_the_enum_of_its_kind() -> None:
    data = JobLifecycleData(jobId="j", kind=JobKind.TRAINING, status="running", occurredAt="2026-01-01T00:00:00Z")
    assert data.status is TrainingStatus.RUNNING
    assert data.model_dump(mode="json")["status"] == "running"
    with pytest.raises(ValidationError, match="not a status of a generation job"):
        JobLifecycleData(jobId="j", kind="generation", status="running", occurredAt="2026-01-01T00:00:00Z")
