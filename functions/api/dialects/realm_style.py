"""The Realm-style models and images API: the flat model view and its list, and generation jobs.

Models: `POST/GET/PATCH /v1/models…` and the list show the flat view (with the custom-models API's names,
`id` and `displayName`, alongside) in this dialect's status words. Images: `GET /v1/images/jobs/{jobId}`
shows a generation job.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from events.envelope import utcnow
from events.generation import GenerationMode, GenerationRequestedData
from events.states import GenerationStatus, ModelStatus, TrainingStatus
from functions.api.dialects import scenario_style
from functions.api.dialects.reads import latest_training
from functions.api.schemas.images import AdapterUsedOut, ImageOut, JobErrorOut, JobParameters, JobView
from functions.api.schemas.models import ModelList, ModelOut
from functions.api.services.webhooks import job_deliveries
from infra.runtime import ServiceContext

# A model's status; `model_status` refines two of them by the latest training and the adapter.
MODEL_STATUS: dict[ModelStatus, str] = {
    ModelStatus.NEW: "pending_training",
    ModelStatus.TRAINING: "training",
    ModelStatus.TRAINED: "active",
    ModelStatus.FAILED: "failed",
    ModelStatus.TRAINING_CANCELED: "pending_training",
}
TRAINING_QUEUED = "training_queued"  # a model whose training waits for a worker
MODEL_STATUS_WORDS = ("pending_training", TRAINING_QUEUED, "training", "active", "failed")

# The list's `status` filter takes this dialect's words and the Scenario-style ones.
STATUS_FILTERS = (
    *MODEL_STATUS_WORDS,
    *(word for word in scenario_style.MODEL_STATUS.values() if word not in MODEL_STATUS_WORDS),
)

JOB_STATUS: dict[GenerationStatus, str] = {
    GenerationStatus.QUEUED: "queued",
    GenerationStatus.PROCESSING: "processing",
    GenerationStatus.COMPLETED: "completed",
    GenerationStatus.FAILED: "failed",
    # The images API has no canceled status: a canceled job reads as failed with error code "canceled".
    GenerationStatus.CANCELED: "failed",
}


def model_status(model: dict[str, Any], training: dict[str, Any] | None) -> str:
    """`pending_training`, `training_queued`, `training`, `active` or `failed`, given the model and its latest
    training."""
    status = ModelStatus(model["status"])
    if status is ModelStatus.TRAINING and training is not None and training["status"] == TrainingStatus.QUEUED.value:
        return TRAINING_QUEUED
    if status is ModelStatus.TRAINING_CANCELED and model.get("adapterKey"):
        return MODEL_STATUS[ModelStatus.TRAINED]  # an earlier training's adapter still serves
    return MODEL_STATUS[status]


def matches_status(model: dict[str, Any], training: dict[str, Any] | None, wanted: str) -> bool:
    """Whether a model has `wanted` status in either this dialect's words or the Scenario-style ones."""
    return wanted in (scenario_style.model_status(model), model_status(model, training))


def model_out(model: dict[str, Any], training: dict[str, Any] | None, image_count: int) -> ModelOut:
    """The flat view of a model, given its latest training and how many training images it has."""
    return ModelOut(
        modelId=model["modelId"],
        id=model["modelId"],
        name=model["name"],
        displayName=model["name"],
        description=model.get("description"),
        status=model_status(model, training),
        baseModel=model["baseModel"],
        type=model["type"],
        tags=model.get("tags") or [],
        createdAt=model["createdAt"],
        updatedAt=model["updatedAt"],
        lastTrainedAt=model.get("lastTrainedAt"),
        triggerWord=model.get("triggerWord"),
        trainingId=model.get("trainingId"),
        trainingImagesNumber=image_count,
    )


async def render_model(context: ServiceContext, model: dict[str, Any]) -> ModelOut:
    """The flat view, reading the latest training and counting images."""
    training, items = await asyncio.gather(
        latest_training(context, model), context.training_data.list(model["modelId"])
    )
    return model_out(model, training, len(items))


async def list_models(
    context: ServiceContext, tenant_id: str, limit: int, offset: int, status: str | None
) -> ModelList:
    """The paginated list, newest first, optionally filtered by status (either dialect's words)."""
    models = await context.models.list_for_tenant(tenant_id)
    trainings = await asyncio.gather(*(latest_training(context, m) for m in models))
    pairs = list(zip(models, trainings, strict=True))
    if status:
        pairs = [(m, t) for m, t in pairs if matches_status(m, t, status)]
    page = pairs[offset : offset + limit]
    counts = await asyncio.gather(*(context.training_data.list(m["modelId"]) for m, _ in page))
    return ModelList(
        data=[model_out(m, t, len(c)) for (m, t), c in zip(page, counts, strict=True)],
        pagination={"limit": limit, "offset": offset, "total": len(pairs)},
    )


def estimated_completion(training: dict[str, Any]) -> str:
    """When the training should end if it started now (`estimatedCompletion` of `POST /models/{id}/train`)."""
    return (utcnow() + timedelta(seconds=float(training.get("estimatedSeconds", 0)))).isoformat()


def _ms_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() * 1000, 1)


async def render_job(context: ServiceContext, job: dict[str, Any]) -> JobView:
    """A generation job, with fresh presigned URLs for completed images."""
    status = GenerationStatus(job["status"])
    request = job["request"]
    images: list[ImageOut] = []
    if status is GenerationStatus.COMPLETED:
        expiry = context.settings.presign_expiry_seconds
        urls = await asyncio.gather(*(context.store.presign_get(key, expiry) for key in job.get("outputs", [])))
        images = [
            ImageOut(url=url, width=request["width"], height=request["height"], format=request["outputFormat"])
            for url in urls
        ]
    error = None
    if status is GenerationStatus.CANCELED:
        error = JobErrorOut(code="canceled", message="the job was canceled")
    elif job.get("error"):
        error = JobErrorOut(**job["error"])
    timings: dict[str, float] = {}
    for name, value in (
        ("queueMs", _ms_between(job.get("createdAt"), job.get("startedAt"))),
        ("totalMs", _ms_between(job.get("createdAt"), job.get("completedAt"))),
    ):
        if value is not None:
            timings[name] = value
    timings.update({k: float(v) for k, v in (job.get("result") or {}).get("timings", {}).items()})
    strength = None
    if request.get("mode", GenerationMode.TEXT_TO_IMAGE.value) != GenerationMode.TEXT_TO_IMAGE.value:
        strength = GenerationRequestedData.model_validate(request).effective_strength
    return JobView(
        jobId=job["jobId"],
        status=JOB_STATUS[status],  # type: ignore[arg-type]
        type=request.get("mode", "text-to-image"),
        modelId=job["modelId"],
        prompt=request["prompt"],
        parameters=JobParameters(
            **{k: request.get(k) for k in JobParameters.model_fields if k != "strength"}, strength=strength
        ),
        adapters=[
            AdapterUsedOut(**{k: a.get(k) for k in AdapterUsedOut.model_fields}) for a in request.get("adapters", [])
        ],
        createdAt=job["createdAt"],
        updatedAt=job["updatedAt"],
        startedAt=job.get("startedAt"),
        completedAt=job.get("completedAt"),
        images=images,
        error=error,
        timings=timings or None,
        webhook=job.get("webhook"),
        deliveries=await job_deliveries(context, job),
    )
