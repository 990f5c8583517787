"""The custom-models API: trainings, training images and predictions in its words.

It shows trainings and predictions with one vocabulary (`starting`, `processing`, `succeeded`, `failed`,
`canceled`). Its models are the flat view of the Realm-style module (`id` and `displayName` are its names).
"""

from __future__ import annotations

import asyncio
from typing import Any

from events.states import GenerationStatus, TrainingStatus
from functions.api.dialects.reads import queue_position
from functions.api.dialects.realm_style import render_job
from functions.api.schemas.predictions import PredictionView, ScaleConfig
from functions.api.schemas.trainings import DataItemOut, TrainingEpochView, TrainingProgressView, TrainingView
from functions.api.services.webhooks import job_deliveries
from infra.runtime import ServiceContext

TRAINING_STATUS: dict[TrainingStatus, str] = {
    TrainingStatus.QUEUED: "starting",
    TrainingStatus.RUNNING: "processing",
    TrainingStatus.SUCCEEDED: "succeeded",
    TrainingStatus.FAILED: "failed",
    TrainingStatus.CANCELED: "canceled",
}
# The job-record field that makes a generation job a prediction: the request's scaleConfigs labels, in order.
LABELS_FIELD = "scaleConfigLabels"

PREDICTION_STATUS: dict[GenerationStatus, str] = {
    GenerationStatus.QUEUED: "starting",
    GenerationStatus.PROCESSING: "processing",
    GenerationStatus.COMPLETED: "succeeded",
    GenerationStatus.FAILED: "failed",
    GenerationStatus.CANCELED: "canceled",
}


def training_status(training: dict[str, Any]) -> str:
    """A training's status in this dialect's words."""
    return TRAINING_STATUS[TrainingStatus(training["status"])]


async def render_training(context: ServiceContext, training: dict[str, Any]) -> TrainingView:
    """A training with its progress and epochs."""
    status = TrainingStatus(training["status"])
    progress = None
    if training.get("progress") and status is TrainingStatus.RUNNING:
        p = training["progress"]
        progress = TrainingProgressView(
            stage=p["stage"],
            step=p["step"],
            totalSteps=p["totalSteps"],
            progress=round(p["step"] / p["totalSteps"], 4),
            epoch=p["epoch"],
            totalEpochs=p["totalEpochs"],
            loss=p.get("loss"),
            stepsPerSecond=p.get("stepsPerSecond"),
            remainingTimeMs=p.get("remainingTimeMs"),
            updatedAt=p["updatedAt"],
        )
    expiry = context.settings.presign_expiry_seconds
    epochs = []
    for name, info in sorted((training.get("epochs") or {}).items()):
        urls = await asyncio.gather(*(context.store.presign_get(k, expiry) for k in info.get("sampleKeys", [])))
        epochs.append(TrainingEpochView(epoch=name, step=info["step"], loss=info.get("loss"), sampleUrls=list(urls)))
    error = training.get("error")
    if status is TrainingStatus.CANCELED:
        error = {"code": "canceled", "message": "the training was canceled"}
    return TrainingView(
        id=training["jobId"],
        trainingId=training["jobId"],
        modelId=training["modelId"],
        status=TRAINING_STATUS[status],  # type: ignore[arg-type]
        triggerWord=training["triggerWord"],
        createdAt=training["createdAt"],
        updatedAt=training["updatedAt"],
        startedAt=training.get("startedAt"),
        completedAt=training.get("completedAt"),
        cancelRequested=bool(training.get("cancelRequested")),
        queuePosition=await queue_position(context, training) if status is TrainingStatus.QUEUED else None,
        progress=progress,
        epochs=epochs,
        parameters=training["request"]["parameters"],
        error=error,
        webhook=training.get("webhook"),
        deliveries=await job_deliveries(context, training),
    )


def training_image_out(item: dict[str, Any]) -> DataItemOut:
    """One training image's record (its bytes are not part of it)."""
    return DataItemOut(
        dataId=item["dataId"],
        id=item["dataId"],
        status=item.get("status", "ready"),
        width=item.get("width"),
        height=item.get("height"),
        format=item.get("format"),
        bytes=item.get("bytes"),
        name=item.get("name"),
        error=item.get("error"),
        createdAt=item["createdAt"],
        updatedAt=item["updatedAt"],
    )


async def render_prediction(context: ServiceContext, job: dict[str, Any]) -> PredictionView:
    """A prediction, with fresh presigned URLs once it succeeded."""
    view = await render_job(context, job)
    request = job["request"]
    adapters = request.get("adapters", [])
    configs = {
        label: ScaleConfig(modelId=a["modelId"], trainingId=a["trainingId"], scale=a["scale"])
        for label, a in zip(job[LABELS_FIELD], adapters, strict=True)
    }
    return PredictionView(
        predictionId=job["jobId"],
        status=PREDICTION_STATUS[GenerationStatus(job["status"])],  # type: ignore[arg-type]
        outputImages=[image.url for image in view.images],
        prompt=request["prompt"],
        scaleConfigs=configs,
        adapters=view.adapters,
        baseModel=request["baseModel"],
        seed=request["seed"],
        image_size={"width": request["width"], "height": request["height"]},
        num_images=request["numOutputs"],
        output_format=request["outputFormat"],
        guidance_scale=request["guidanceScale"],
        num_inference_steps=request["numInferenceSteps"],
        createdAt=view.createdAt,
        updatedAt=view.updatedAt,
        startedAt=view.startedAt,
        completedAt=view.completedAt,
        error=view.error if job["status"] != GenerationStatus.CANCELED.value else None,
        timings=view.timings,
        webhook=view.webhook,
        deliveries=view.deliveries,
    )
