"""Portraits (the headshot API): the record written when one is asked for, then moving it along on
lifecycle events: training done -> queue each style's generation; all generations done -> the portrait is
complete. Every step is safe to repeat (redeliveries happen)."""

from __future__ import annotations

import logging
from typing import Any

from events.envelope import utcnow
from events.generation import GenerationMode, GenerationRequestedData
from events.lifecycle import JOB_CHECKPOINT, JOB_PROGRESS, JobError, JobLifecycle
from events.records.jobs import GenerationJob, PortraitJob
from events.states import GENERATION, PORTRAIT, GenerationStatus, JobKind, PortraitStatus, TrainingStatus
from events.usecases import jobs
from events.usecases.adapters import model_adapter
from events.usecases.errors import UseCaseError
from events.usecases.lifecycle import publish_lifecycle_once
from events.usecases.ports import Backends

log = logging.getLogger(__name__)

SOURCE = "/lorafoundry/portraits"
# A fixed seed per style index: the same portrait regenerated gives the same pictures.
SEED_BASE = 4004
# An uploaded style image is repainted this much: enough for the subject to take over, its look kept.
STYLE_STRENGTH = 0.75


def style_job_ids(portrait_id: str, style_count: int) -> list[str]:
    """The generation job id of each style: deterministic, so a redelivered completion event queues the
    same jobs, never new ones."""
    suffix = portrait_id.removeprefix("prt_")
    return [f"job_{suffix}_{index}" for index in range(style_count)]


async def record_portrait(backends: Backends, record: PortraitJob) -> PortraitJob:
    """Write the portrait, in `training` (its initial status), before its training is queued: whatever the
    training's events cause always finds the portrait."""
    return await backends.jobs.create(record)


async def abandon_portrait(backends: Backends, portrait_id: str, error: UseCaseError | None) -> None:
    """A portrait whose training could not be started: failed with the reason and hidden, as if it had
    never been asked for (the caller was told why)."""
    fields: dict[str, Any] = {"completedAt": utcnow().isoformat(), "deletedAt": utcnow().isoformat()}
    if error is not None:
        fields["error"] = JobError(code=error.code, message=error.message)
    await backends.jobs.advance(portrait_id, PortraitStatus.FAILED, fields)


async def _end(backends: Backends, portrait: PortraitJob, status: PortraitStatus, **fields: Any) -> None:
    advance = await backends.jobs.advance(portrait.jobId, status, {**fields, "completedAt": utcnow().isoformat()})
    if advance.job is not None and advance.job.status is status:
        # Its lifecycle event, like any job's: the webhooks function calls the portrait's webhook from it.
        await publish_lifecycle_once(backends, advance.job, status, SOURCE)


async def _fail(backends: Backends, portrait: PortraitJob, code: str, message: str) -> None:
    await _end(backends, portrait, PortraitStatus.FAILED, error=JobError(code=code, message=message))


async def queue_style_generations(backends: Backends, portrait: PortraitJob) -> None:
    """Queue one generation per style with the trained adapter (idempotent), then mark it generating."""
    model = await backends.models.get(portrait.modelId) if portrait.modelId else None
    spec = backends.base_models.get(model.baseModel) if model else None
    if model is None or spec is None or not model.adapterKey:
        await _fail(backends, portrait, "model_unavailable", "the trained model or its base model is gone")
        return
    adapter = model_adapter(model)
    # Generating first: a style's job may end (and its event be handled, on another partition) before the
    # last one is queued, and finishing is only allowed from generating.
    await backends.jobs.advance(portrait.jobId, PortraitStatus.GENERATING)
    for index, style in enumerate(portrait.styles):
        data = GenerationRequestedData(
            jobId=style.jobId,
            modelId=model.modelId,
            baseModel=spec.name,
            prompt=style.prompt,
            width=spec.default_size,
            height=spec.default_size,
            guidanceScale=spec.default_guidance,
            numOutputs=portrait.imagesPerStyle,
            numInferenceSteps=spec.default_steps,
            seed=SEED_BASE + index,
            adapters=[adapter],
            **(
                {"mode": GenerationMode.IMAGE_TO_IMAGE, "initImageKey": style.imageKey, "strength": STYLE_STRENGTH}
                if style.imageKey
                else {}
            ),
        )
        await jobs.queue_generation(
            backends,
            portrait.tenantId,
            data,
            source=SOURCE,
            extra={"portraitId": portrait.jobId},
            republish_existing=True,
        )


async def finish_if_done(backends: Backends, portrait: PortraitJob) -> None:
    """Complete the portrait once every style's job has ended (failed if none produced images)."""
    style_jobs = [await backends.jobs.get_as(style.jobId, GenerationJob) for style in portrait.styles]
    if any(job is None or not GENERATION.is_terminal(job.status) for job in style_jobs):
        return
    done = [job for job in style_jobs if job and job.status is GenerationStatus.COMPLETED]
    if done:
        await _end(backends, portrait, PortraitStatus.COMPLETED)
    else:
        await _fail(backends, portrait, "generation_failed", "no style could be generated")


async def on_lifecycle(backends: Backends, event: JobLifecycle) -> None:
    """React to one lifecycle event if it concerns a portrait's training or generations."""
    data = event.data
    if event.type in (JOB_PROGRESS, JOB_CHECKPOINT):
        return  # not status changes
    if data.kind is JobKind.PORTRAIT:
        return  # a portrait's own events
    job = await backends.jobs.get(data.jobId)
    if job is None or job.kind is not data.kind or job.kind is JobKind.PORTRAIT or not job.portraitId:
        return
    portrait = await backends.jobs.get_as(job.portraitId, PortraitJob)
    if portrait is None:
        # The portrait is written before its training is queued: a job naming a missing one is not ours.
        log.warning("portrait %s of job %s does not exist: event dropped", job.portraitId, data.jobId)
        return
    if PORTRAIT.is_terminal(portrait.status):
        return
    if data.kind is JobKind.TRAINING:
        if data.status is TrainingStatus.RUNNING:
            # The portrait starts with its training (its webhook's `start`).
            await publish_lifecycle_once(backends, portrait, PortraitStatus.TRAINING, SOURCE)
        elif data.status is TrainingStatus.SUCCEEDED:
            await queue_style_generations(backends, portrait)
        elif data.status is TrainingStatus.FAILED:
            message = data.error.message if data.error else "the training failed"
            await _fail(backends, portrait, "training_failed", message)
        elif data.status is TrainingStatus.CANCELED:
            await _end(backends, portrait, PortraitStatus.CANCELED)
    elif GENERATION.is_terminal(GenerationStatus(data.status)):
        await finish_if_done(backends, portrait)
