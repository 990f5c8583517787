"""The Scenario-style model resource: the `{"model": ...}` object that `PUT /v1/models/{id}` returns.

Its status words are the model's own (events/states.py `ModelStatus` is named after them); its training
times are milliseconds since the epoch and its durations seconds, as that API documents them.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from events.records.jobs import TrainingJob
from events.records.models import ModelRecord
from events.states import ModelStatus, TrainingStatus, UploadStatus
from functions.api.dialects.base_models import model_capabilities, sizes_out
from functions.api.dialects.reads import latest_training, queue_position
from functions.api.schemas.models import (
    AssetOut,
    Concept,
    EpochOut,
    ModelDetailOut,
    TrainingImageOut,
    TrainingProgressOut,
    TrainingStatsOut,
    canonical_parameters,
    imported_adapter_out,
)
from infra.runtime import ServiceContext

MODEL_STATUS: dict[ModelStatus, str] = {
    ModelStatus.NEW: "new",
    ModelStatus.TRAINING: "training",
    ModelStatus.TRAINED: "trained",
    ModelStatus.FAILED: "failed",
    ModelStatus.TRAINING_CANCELED: "training-canceled",
}
# trainingProgress.stage of a training that waits for a worker, and of one whose worker has not reported yet.
QUEUED_STAGE = "queued-for-train"
STARTING_STAGE = "starting-train"

TRAINING_IMAGES_SHOWN = 3  # "the first 3 training images"


def model_status(model: ModelRecord) -> str:
    """The model's status in the Scenario-style words."""
    return MODEL_STATUS[model.status]


def _ms(iso: str | None) -> int | None:
    return int(datetime.fromisoformat(iso).timestamp() * 1000) if iso else None


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 3)


async def training_progress_out(context: ServiceContext, training: TrainingJob | None) -> TrainingProgressOut | None:
    """The trainingProgress of a training that is not finished (none for a finished one)."""
    if training is None or training.status not in (TrainingStatus.QUEUED, TrainingStatus.RUNNING):
        return None
    updated = _ms(training.updatedAt) or 0
    if training.status is TrainingStatus.QUEUED:
        return TrainingProgressOut(
            stage=QUEUED_STAGE, updatedAt=updated, position=await queue_position(context, training)
        )
    progress = training.progress
    if progress is None:
        return TrainingProgressOut(
            stage=STARTING_STAGE, updatedAt=updated, position=0, progress=0.0, startedAt=_ms(training.startedAt)
        )
    return TrainingProgressOut(
        stage=progress.stage.value,
        updatedAt=int(progress.updatedAt.timestamp() * 1000),
        position=0,
        progress=round(progress.step / progress.totalSteps, 4),
        remainingTimeMs=progress.remainingTimeMs,
        startedAt=_ms(training.startedAt),
    )


async def render_model_detail(context: ServiceContext, model: ModelRecord) -> ModelDetailOut:
    """The model object, with the names of the Realm-style and custom-models APIs alongside."""
    training, items = await asyncio.gather(latest_training(context, model), context.training_data.list(model.modelId))
    expiry = context.settings.presign_expiry_seconds
    adapter_training = training
    if model.adapterTrainingId and (training is None or training.jobId != model.adapterTrainingId):
        adapter_training = await context.jobs.get_as(model.adapterTrainingId, TrainingJob)
    epochs: list[EpochOut] = []
    for name, info in sorted((adapter_training.epochs if adapter_training else {}).items()):
        urls = await asyncio.gather(*(context.store.presign_get(k, expiry) for k in info.sampleKeys))
        epochs.append(
            EpochOut(
                epoch=name,
                assets=[AssetOut(assetId=f"{name}-{i}", url=u) for i, u in enumerate(urls)],
            )
        )
    # Only a ready image has normalized bytes to download; a pending or rejected one is counted, not shown.
    shown = [i for i in items if i.status is UploadStatus.READY][:TRAINING_IMAGES_SHOWN]
    download_urls = await asyncio.gather(*(context.store.presign_get(i.key, expiry) for i in shown))
    stats = None
    if training is not None and training.startedAt:
        stats = TrainingStatsOut(
            startedAt=training.startedAt,
            endedAt=training.completedAt,
            queueDuration=_seconds_between(training.createdAt, training.startedAt),
            trainDuration=_seconds_between(training.startedAt, training.completedAt),
        )
    thumbnail = {"assetId": model.thumbnail, "url": ""} if model.thumbnail else None
    spec = context.base_models.get(model.baseModel)
    return ModelDetailOut(
        id=model.modelId,
        modelId=model.modelId,
        capabilities=model_capabilities(spec, model.type),
        family=spec.family.value if spec else None,
        sizes=sizes_out(spec) if spec else None,
        createdAt=model.createdAt,
        updatedAt=model.updatedAt,
        status=model_status(model),
        tags=model.tags,
        trainingImagesNumber=len(items),
        type=model.type,
        name=model.name,
        displayName=model.name,
        shortDescription=model.description,
        description=model.description,
        baseModel=model.baseModel,
        ownerId=model.tenantId,
        modelKeyword=model.triggerWord,
        parameters=canonical_parameters(model.parameters),
        concepts=[Concept(**c.model_dump(exclude_none=True)) for c in model.concepts] if model.concepts else None,
        epoch=model.epoch,
        epochs=epochs,
        trainingImages=[
            TrainingImageOut(
                id=i.dataId,
                createdAt=i.createdAt,
                downloadUrl=url,
                name=i.name or f"{i.dataId}.png",
                description=i.description or "",
                automaticCaptioning=i.automaticCaptioning or "",
            )
            for i, url in zip(shown, download_urls, strict=True)
        ],
        trainingProgress=await training_progress_out(context, training),
        trainingStats=stats,
        classSlug=model.classSlug,
        thumbnail=thumbnail,
        promptEmbedding=model.promptEmbedding,
        negativePromptEmbedding=model.negativePromptEmbedding,
        adapterOrigin=origin.value if (origin := model.adapter_origin) else None,
        importedAdapter=imported_adapter_out(model),
    )
