"""Records and requests the use-case tests start from, written straight into the fakes."""

from __future__ import annotations

from events.generation import GenerationRequestedData
from events.records.jobs import PortraitJob, PortraitStyle, TrainingJob
from events.records.models import ModelRecord
from events.records.training_data import TrainingImageRecord
from events.states import JobKind, TrainingStatus, UploadStatus
from events.storage_keys import model_data_key
from events.usecases import portraits, trainings
from tests.fakes import FakeBackends
from tests.support import generation_request

TENANT = "ten_1"
SOURCE = "/test"


def generation_data(job_id: str = "job_1", model_id: str = "tiny-sd") -> GenerationRequestedData:
    """A small text-to-image request."""
    return generation_request(job_id, model_id, prompt="a cat")


async def new_model(backends: FakeBackends, model_id: str = "mdl_1", model_type: str = "sd-1_5-lora") -> ModelRecord:
    """A model of the tenant, in `new`."""
    return await backends.models.create(
        ModelRecord(modelId=model_id, tenantId=TENANT, name="Cat", baseModel="tiny-sd", type=model_type)
    )


async def add_images(
    backends: FakeBackends, model_id: str, count: int, status: UploadStatus = UploadStatus.READY
) -> list[TrainingImageRecord]:
    """`count` training-image records of the model in `status` (their bytes are not needed by the use cases)."""
    items = []
    for index in range(count):
        data_id = f"dat_{status.value}_{index}"
        item = TrainingImageRecord(
            modelId=model_id,
            dataId=data_id,
            tenantId=TENANT,
            status=status,
            key=model_data_key(model_id, data_id, f"{index:064x}"),
        )
        items.append(await backends.training_data.put(item))
    return items


async def trainable_model(backends: FakeBackends, model_id: str = "mdl_1", images: int = 2) -> ModelRecord:
    """A new model with `images` ready training images."""
    model = await new_model(backends, model_id)
    await add_images(backends, model_id, images)
    return model


async def start(backends: FakeBackends, model: ModelRecord, **kwargs: object) -> TrainingJob:
    """Start a training of `model` as the API does (the model's stored parameters, no options)."""
    return await trainings.start_training(
        backends,
        TENANT,
        model,
        source=SOURCE,
        model_parameters=model.parameters,
        **kwargs,  # type: ignore[arg-type]
    )


async def run_training(backends: FakeBackends, training: TrainingJob) -> TrainingJob:
    """What a worker's claim does: the training is running."""
    claimed = await backends.jobs.claim(training.jobId, "worker-1", 60, kind=JobKind.TRAINING)
    assert isinstance(claimed, TrainingJob)
    return claimed


async def finish_training(backends: FakeBackends, training: TrainingJob) -> TrainingJob:
    """A running training succeeded, with its model trained on its adapter (what the notification path does)."""
    adapter_key = f"trainings/{training.jobId}/adapter.safetensors"
    advance = await backends.jobs.advance(training.jobId, TrainingStatus.SUCCEEDED, {"adapterKey": adapter_key})
    assert isinstance(advance.record, TrainingJob)
    await trainings.settle_model(
        backends,
        advance.record,
        TrainingStatus.SUCCEEDED,
        {"adapterKey": adapter_key, "adapterTrainingId": training.jobId},
    )
    return advance.record


def portrait_record(model: ModelRecord, training_id: str, portrait_id: str = "prt_abc", styles: int = 2) -> PortraitJob:
    """A portrait of `model` with `styles` styles, each with its deterministic generation job."""
    job_ids = portraits.style_job_ids(portrait_id, styles)
    return PortraitJob(
        jobId=portrait_id,
        tenantId=TENANT,
        modelId=model.modelId,
        trainingId=training_id,
        gender="woman",
        styles=[
            PortraitStyle(id=f"style{i}", name=f"Style {i}", prompt=f"a photo, style {i}", jobId=job_ids[i])
            for i in range(styles)
        ],
    )


__all__ = [
    "SOURCE",
    "TENANT",
    "add_images",
    "finish_training",
    "generation_data",
    "new_model",
    "portrait_record",
    "run_training",
    "start",
    "trainable_model",
]
