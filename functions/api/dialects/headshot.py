"""The headshot API: portraits (one job from the photos to each style's images) and the style lists."""

from __future__ import annotations

import asyncio

from events.records.jobs import GenerationJob, PortraitJob, TrainingJob
from events.states import GenerationStatus, PortraitStatus
from functions.api.dialects.custom_models import training_status
from functions.api.schemas.portraits import PortraitStyleOut, PortraitView, StyleOut
from functions.api.services.portraits import STYLES
from functions.api.services.webhooks import job_deliveries
from infra.runtime import ServiceContext

PORTRAIT_STATUS: dict[PortraitStatus, str] = {
    PortraitStatus.TRAINING: "training",
    PortraitStatus.GENERATING: "generating",
    PortraitStatus.COMPLETED: "completed",
    PortraitStatus.FAILED: "failed",
    PortraitStatus.CANCELED: "canceled",
}
# A style's generation job in the internal words: unlike the images API's job view, `canceled` stays itself.
STYLE_STATUS: dict[GenerationStatus, str] = {
    GenerationStatus.QUEUED: "queued",
    GenerationStatus.PROCESSING: "processing",
    GenerationStatus.COMPLETED: "completed",
    GenerationStatus.FAILED: "failed",
    GenerationStatus.CANCELED: "canceled",
}


def styles_for(gender: str) -> list[StyleOut]:
    """The styles offered for a gender."""
    return [StyleOut(id=s.id, name=s.name, gender=gender) for s in STYLES if gender in s.genders]  # type: ignore[arg-type]


async def render_portrait(context: ServiceContext, portrait: PortraitJob) -> PortraitView:
    """A portrait with its training's progress (the training in the custom-models API's words) and each
    style's images once generated."""
    training = await context.jobs.get_as(portrait.trainingId, TrainingJob)
    styles = []
    expiry = context.settings.presign_expiry_seconds
    for style in portrait.styles:
        job = await context.jobs.get_as(style.jobId, GenerationJob)
        urls = []
        status = job.status if job is not None else None
        if job is not None and status is GenerationStatus.COMPLETED:
            urls = list(await asyncio.gather(*(context.store.presign_get(k, expiry) for k in job.outputs or [])))
        styles.append(
            PortraitStyleOut(
                id=style.id,
                name=style.name,
                jobId=style.jobId,
                status=STYLE_STATUS[status] if status is not None else None,
                images=urls,
            )
        )
    progress = None
    if training is not None and training.progress is not None:
        info = training.progress
        progress = round(info.step / max(info.totalSteps, 1), 4)
    return PortraitView(
        portraitId=portrait.jobId,
        id=portrait.jobId,
        status=PORTRAIT_STATUS[portrait.status],  # type: ignore[arg-type]
        gender=portrait.gender,
        customizations=portrait.customizations,
        modelId=portrait.modelId,
        trainingId=portrait.trainingId,
        trainingStatus=training_status(training) if training else None,
        trainingProgress=progress,
        styles=styles,
        createdAt=portrait.createdAt,
        updatedAt=portrait.updatedAt,
        completedAt=portrait.completedAt,
        error=portrait.error.model_dump() if portrait.error else None,
        webhook=portrait.webhook.model_dump(mode="json") if portrait.webhook else None,
        deliveries=await job_deliveries(context, portrait),
    )
