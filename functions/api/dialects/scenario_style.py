"""The Scenario-style model resource: the `{"model": ...}` object that `PUT /v1/models/{id}` returns.

Its status words are the model's own (events/states.py `ModelStatus` is named after them); its training
times are milliseconds since the epoch and its durations seconds, as that API documents them.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from events.states import ModelStatus, TrainingStatus
from functions.api.dialects.reads import latest_training, queue_position
from functions.api.schemas.models import (
    AssetOut,
    EpochOut,
    ModelDetailOut,
    TrainingImageOut,
    TrainingProgressOut,
    TrainingStatsOut,
    canonical_parameters,
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

CAPABILITIES = ["txt2img", "img2img", "inpaint"]
TRAINING_IMAGES_SHOWN = 3  # "the first 3 training images"


def model_status(model: dict[str, Any]) -> str:
    """The model's status in the Scenario-style words."""
    return MODEL_STATUS[ModelStatus(model["status"])]


def _ms(iso: str | None) -> int | None:
    return int(datetime.fromisoformat(iso).timestamp() * 1000) if iso else None


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 3)


async def training_progress_out(context: ServiceContext, training: dict[str, Any] | None) -> TrainingProgressOut | None:
    """The trainingProgress of a training that is not finished (none for a finished one)."""
    if training is None or training["status"] not in (TrainingStatus.QUEUED.value, TrainingStatus.RUNNING.value):
        return None
    updated = _ms(training["updatedAt"]) or 0
    if training["status"] == TrainingStatus.QUEUED.value:
        return TrainingProgressOut(
            stage=QUEUED_STAGE, updatedAt=updated, position=await queue_position(context, training)
        )
    progress = training.get("progress") or {}
    return TrainingProgressOut(
        stage=progress.get("stage", STARTING_STAGE),
        updatedAt=_ms(progress.get("updatedAt")) or updated,
        position=0,
        progress=round(progress["step"] / progress["totalSteps"], 4) if progress else 0.0,
        remainingTimeMs=progress.get("remainingTimeMs"),
        startedAt=_ms(training.get("startedAt")),
    )


async def render_model_detail(context: ServiceContext, model: dict[str, Any]) -> ModelDetailOut:
    """The model object, with the names of the Realm-style and custom-models APIs alongside."""
    training, items = await asyncio.gather(
        latest_training(context, model), context.training_data.list(model["modelId"])
    )
    expiry = context.settings.presign_expiry_seconds
    adapter_training = training
    if model.get("adapterTrainingId") and (training is None or training["jobId"] != model["adapterTrainingId"]):
        adapter_training = await context.trainings.get(model["adapterTrainingId"])
    epochs: list[EpochOut] = []
    for name, info in sorted(((adapter_training or {}).get("epochs") or {}).items()):
        urls = await asyncio.gather(*(context.store.presign_get(k, expiry) for k in info.get("sampleKeys", [])))
        epochs.append(
            EpochOut(
                epoch=name,
                assets=[AssetOut(assetId=f"{name}-{i}", url=u) for i, u in enumerate(urls)],
            )
        )
    # Only a ready image has normalized bytes to download; a pending or rejected one is counted, not shown.
    shown = [i for i in items if i.get("status", "ready") == "ready"][:TRAINING_IMAGES_SHOWN]
    download_urls = await asyncio.gather(*(context.store.presign_get(i["key"], expiry) for i in shown))
    stats = None
    if training is not None and training.get("startedAt"):
        stats = TrainingStatsOut(
            startedAt=training.get("startedAt"),
            endedAt=training.get("completedAt"),
            queueDuration=_seconds_between(training["createdAt"], training.get("startedAt")),
            trainDuration=_seconds_between(training.get("startedAt"), training.get("completedAt")),
        )
    thumbnail = {"assetId": model["thumbnail"], "url": ""} if model.get("thumbnail") else None
    return ModelDetailOut(
        id=model["modelId"],
        modelId=model["modelId"],
        capabilities=CAPABILITIES,
        createdAt=model["createdAt"],
        updatedAt=model["updatedAt"],
        status=model_status(model),
        tags=model.get("tags") or [],
        trainingImagesNumber=len(items),
        type=model["type"],
        name=model["name"],
        displayName=model["name"],
        shortDescription=model.get("description"),
        description=model.get("description"),
        baseModel=model["baseModel"],
        ownerId=model["tenantId"],
        modelKeyword=model.get("triggerWord"),
        parameters=canonical_parameters(model.get("parameters")),
        concepts=model.get("concepts"),
        epoch=model.get("epoch"),
        epochs=epochs,
        trainingImages=[
            TrainingImageOut(
                id=i["dataId"], createdAt=i["createdAt"], downloadUrl=url, name=i.get("name") or f"{i['dataId']}.png"
            )
            for i, url in zip(shown, download_urls, strict=True)
        ],
        trainingProgress=await training_progress_out(context, training),
        trainingStats=stats,
        classSlug=model.get("classSlug"),
        thumbnail=thumbnail,
        promptEmbedding=model.get("promptEmbedding"),
        negativePromptEmbedding=model.get("negativePromptEmbedding"),
    )
