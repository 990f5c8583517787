"""The Realm-style models and images API: the flat model view and its list, and generation jobs.

Models: `POST/GET/PATCH /v1/models…` and the list show the flat view (with the custom-models API's names,
`id` and `displayName`, alongside) in this dialect's status words. Images: `GET /v1/images/jobs/{jobId}`
shows a generation job.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from events.envelope import utcnow
from events.generation import GenerationMode
from events.records.jobs import GenerationJob, TrainingJob
from events.records.models import ModelRecord
from events.states import GenerationStatus, ModelStatus, TrainingStatus
from functions.api.dialects import scenario_style
from functions.api.dialects.base_models import model_capabilities, sizes_out
from functions.api.dialects.reads import generation_queue_place, latest_training
from functions.api.schemas.images import AdapterUsedOut, ImageOut, JobErrorOut, JobParameters, JobView
from functions.api.schemas.models import ModelList, ModelOut, imported_adapter_out
from functions.api.services.webhooks import job_deliveries
from infra.base_models import BaseModelSpec
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


def model_status(model: ModelRecord, training: TrainingJob | None) -> str:
    """`pending_training`, `training_queued`, `training`, `active` or `failed`, given the model and its latest
    training."""
    status = model.status
    if status is ModelStatus.TRAINING and training is not None and training.status is TrainingStatus.QUEUED:
        return TRAINING_QUEUED
    if status is ModelStatus.TRAINING_CANCELED and model.adapterKey:
        return MODEL_STATUS[ModelStatus.TRAINED]  # an earlier training's adapter still serves
    return MODEL_STATUS[status]


def matches_status(model: ModelRecord, training: TrainingJob | None, wanted: str) -> bool:
    """Whether a model has `wanted` status in either this dialect's words or the Scenario-style ones."""
    return wanted in (scenario_style.model_status(model), model_status(model, training))


def model_out(
    model: ModelRecord, training: TrainingJob | None, image_count: int, spec: BaseModelSpec | None = None
) -> ModelOut:
    """The flat view of a model, given its latest training, how many training images it has and its base model
    (whose family, capabilities and sizes it shows)."""
    return ModelOut(
        modelId=model.modelId,
        id=model.modelId,
        name=model.name,
        displayName=model.name,
        description=model.description,
        status=model_status(model, training),
        baseModel=model.baseModel,
        type=model.type,
        tags=model.tags,
        createdAt=model.createdAt,
        updatedAt=model.updatedAt,
        lastTrainedAt=model.lastTrainedAt,
        triggerWord=model.triggerWord,
        trainingId=model.trainingId,
        trainingImagesNumber=image_count,
        family=spec.family.value if spec else None,
        capabilities=model_capabilities(spec, model.type),
        sizes=sizes_out(spec) if spec else None,
        adapterOrigin=origin.value if (origin := model.adapter_origin) else None,
        importedAdapter=imported_adapter_out(model),
    )


async def render_model(context: ServiceContext, model: ModelRecord) -> ModelOut:
    """The flat view, reading the latest training and counting images."""
    training, items = await asyncio.gather(latest_training(context, model), context.training_data.list(model.modelId))
    return model_out(model, training, len(items), context.base_models.get(model.baseModel))


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
    counts = await asyncio.gather(*(context.training_data.list(m.modelId) for m, _ in page))
    return ModelList(
        data=[
            model_out(m, t, len(c), context.base_models.get(m.baseModel))
            for (m, t), c in zip(page, counts, strict=True)
        ],
        pagination={"limit": limit, "offset": offset, "total": len(pairs)},
    )


def estimated_completion(training: TrainingJob) -> str:
    """When the training should end if it started now (`estimatedCompletion` of `POST /models/{id}/train`)."""
    return (utcnow() + timedelta(seconds=float(training.estimatedSeconds or 0))).isoformat()


def _ms_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() * 1000, 1)


async def render_job(context: ServiceContext, job: GenerationJob) -> JobView:
    """A generation job, with fresh presigned URLs for completed images."""
    status = job.status
    request = job.request
    images: list[ImageOut] = []
    if status is GenerationStatus.COMPLETED:
        expiry = context.settings.presign_expiry_seconds
        urls = await asyncio.gather(*(context.store.presign_get(key, expiry) for key in job.outputs or []))
        images = [
            ImageOut(url=url, width=request.width, height=request.height, format=request.outputFormat.value)
            for url in urls
        ]
    error = None
    if status is GenerationStatus.CANCELED:
        error = JobErrorOut(code="canceled", message="the job was canceled")
    elif job.error is not None:
        error = JobErrorOut(**job.error.model_dump())
    timings: dict[str, float] = {}
    for name, value in (
        ("queueMs", _ms_between(job.createdAt, job.startedAt)),
        ("totalMs", _ms_between(job.createdAt, job.completedAt)),
    ):
        if value is not None:
            timings[name] = value
    if job.result is not None:
        timings.update({k: float(v) for k, v in job.result.timings.model_dump().items()})
    place = await generation_queue_place(context, job) if status is GenerationStatus.QUEUED else None
    strength = None if request.mode is GenerationMode.TEXT_TO_IMAGE else request.effective_strength
    stored = request.model_dump(mode="json")
    return JobView(
        jobId=job.jobId,
        status=JOB_STATUS[status],  # type: ignore[arg-type]
        type=request.mode.value,
        modelId=request.modelId,
        prompt=request.prompt,
        parameters=JobParameters(
            **{k: stored.get(k) for k in JobParameters.model_fields if k != "strength"}, strength=strength
        ),
        adapters=[AdapterUsedOut(**a.model_dump(include=set(AdapterUsedOut.model_fields))) for a in request.adapters],
        createdAt=job.createdAt,
        updatedAt=job.updatedAt,
        startedAt=job.startedAt,
        completedAt=job.completedAt,
        images=images,
        error=error,
        timings=timings or None,
        webhook=job.webhook.model_dump(mode="json") if job.webhook else None,
        deliveries=await job_deliveries(context, job),
        cancelRequested=True if job.cancelRequested and status is GenerationStatus.PROCESSING else None,
        queuePosition=place.position if place else None,
        estimatedStartAt=place.estimated_start if place else None,
    )
