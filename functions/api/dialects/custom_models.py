"""The custom-models API: trainings, training images and predictions in its words.

It shows trainings and predictions with one vocabulary (`starting`, `processing`, `succeeded`, `failed`,
`canceled`). Its models are the flat view of the Realm-style module (`id` and `displayName` are its names).
"""

from __future__ import annotations

import asyncio

from events.records.jobs import GenerationJob, TrainingJob
from events.records.training_data import TrainingImageRecord
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

PREDICTION_STATUS: dict[GenerationStatus, str] = {
    GenerationStatus.QUEUED: "starting",
    GenerationStatus.PROCESSING: "processing",
    GenerationStatus.COMPLETED: "succeeded",
    GenerationStatus.FAILED: "failed",
    GenerationStatus.CANCELED: "canceled",
}


def training_status(training: TrainingJob) -> str:
    """A training's status in this dialect's words."""
    return TRAINING_STATUS[training.status]


async def render_training(context: ServiceContext, training: TrainingJob) -> TrainingView:
    """A training with its progress and epochs."""
    status = training.status
    progress = None
    if training.progress is not None and status is TrainingStatus.RUNNING:
        p = training.progress
        progress = TrainingProgressView(
            stage=p.stage.value,
            step=p.step,
            totalSteps=p.totalSteps,
            progress=round(p.step / p.totalSteps, 4),
            epoch=p.epoch,
            totalEpochs=p.totalEpochs,
            loss=p.loss,
            stepsPerSecond=p.stepsPerSecond,
            remainingTimeMs=p.remainingTimeMs,
            updatedAt=p.updatedAt.isoformat(),
        )
    expiry = context.settings.presign_expiry_seconds
    epochs = []
    for name, info in sorted(training.epochs.items()):
        urls = await asyncio.gather(*(context.store.presign_get(k, expiry) for k in info.sampleKeys))
        epochs.append(TrainingEpochView(epoch=name, step=info.step, loss=info.loss, sampleUrls=list(urls)))
    error = training.error.model_dump() if training.error else None
    if status is TrainingStatus.CANCELED:
        error = {"code": "canceled", "message": "the training was canceled"}
    return TrainingView(
        id=training.jobId,
        trainingId=training.jobId,
        modelId=training.request.modelId,
        status=TRAINING_STATUS[status],  # type: ignore[arg-type]
        triggerWord=training.triggerWord,
        createdAt=training.createdAt,
        updatedAt=training.updatedAt,
        startedAt=training.startedAt,
        completedAt=training.completedAt,
        cancelRequested=bool(training.cancelRequested),
        queuePosition=await queue_position(context, training) if status is TrainingStatus.QUEUED else None,
        progress=progress,
        epochs=epochs,
        parameters=training.request.parameters.model_dump(mode="json", exclude_none=True),
        error=error,
        webhook=training.webhook.model_dump(mode="json") if training.webhook else None,
        deliveries=await job_deliveries(context, training),
    )


def training_image_out(item: TrainingImageRecord) -> DataItemOut:
    """One training image's record (its bytes are not part of it)."""
    return DataItemOut(
        dataId=item.dataId,
        id=item.dataId,
        status=item.status.value,  # type: ignore[arg-type]
        width=item.width,
        height=item.height,
        format=item.format,
        bytes=item.bytes,
        name=item.name,
        description=item.description or "",
        automaticCaptioning=item.automaticCaptioning or "",
        error=item.error.model_dump() if item.error else None,
        createdAt=item.createdAt,
        updatedAt=item.updatedAt,
    )


async def render_prediction(context: ServiceContext, job: GenerationJob) -> PredictionView:
    """A prediction, with fresh presigned URLs once it succeeded."""
    view = await render_job(context, job)
    request = job.request
    configs = {
        label: ScaleConfig(modelId=a.modelId, trainingId=a.trainingId, scale=a.scale)
        for label, a in zip(job.scaleConfigLabels or [], request.adapters, strict=True)
    }
    return PredictionView(
        predictionId=job.jobId,
        status=PREDICTION_STATUS[job.status],  # type: ignore[arg-type]
        outputImages=[image.url for image in view.images],
        prompt=request.prompt,
        scaleConfigs=configs,
        adapters=view.adapters,
        baseModel=request.baseModel,
        seed=request.seed,
        image_size={"width": request.width, "height": request.height},
        num_images=request.numOutputs,
        output_format=request.outputFormat.value,
        guidance_scale=request.guidanceScale,
        num_inference_steps=request.numInferenceSteps,
        createdAt=view.createdAt,
        updatedAt=view.updatedAt,
        startedAt=view.startedAt,
        completedAt=view.completedAt,
        error=view.error if job.status is not GenerationStatus.CANCELED else None,
        timings=view.timings,
        webhook=view.webhook,
        deliveries=view.deliveries,
        cancelRequested=view.cancelRequested,
        queuePosition=view.queuePosition,
        estimatedStartAt=view.estimatedStartAt,
    )
