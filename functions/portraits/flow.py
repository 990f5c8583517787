"""Moving portraits along on lifecycle events: training done -> queue each style's generation; all
generations done -> the portrait is complete. Every step is safe to repeat (redeliveries happen)."""

from __future__ import annotations

import logging
from typing import Any

from events.envelope import utcnow
from events.generation import GenerationMode, GenerationRequestedData
from events.lifecycle import JOB_CHECKPOINT, JOB_PROGRESS, JobLifecycle
from events.states import GENERATION, GenerationStatus, PortraitStatus, TrainingStatus
from infra.base_models import base_model_registry
from infra.generation_queue import queue_generation
from infra.lifecycle import publish_lifecycle_once
from infra.model_adapter import model_adapter
from infra.runtime import ServiceContext

log = logging.getLogger(__name__)

SOURCE = "/lorafoundry/portraits"
# A fixed seed per style index: the same portrait regenerated gives the same pictures.
SEED_BASE = 4004
# An uploaded style image is repainted this much: enough for the subject to take over, its look kept.
STYLE_STRENGTH = 0.75
# The API writes the portrait right after queueing its training, so an event can overtake the record: for
# this long the event is retried rather than dropped (past it, the API died between the two writes).
RECORD_GRACE_S = 60.0


class PortraitNotYetRecorded(RuntimeError):
    """A training names a portrait whose record is not written yet; the batch is retried."""


async def _end(context: ServiceContext, portrait: dict[str, Any], status: PortraitStatus, **fields: Any) -> None:
    advance = await context.portraits.advance(
        portrait["jobId"], status, {**fields, "completedAt": utcnow().isoformat()}
    )
    if advance.job is not None and advance.job["status"] == status.value:
        # Its lifecycle event, like any job's: the webhooks function calls the portrait's webhook from it.
        await publish_lifecycle_once(context, advance.job, status, SOURCE)


async def _fail(context: ServiceContext, portrait: dict[str, Any], code: str, message: str) -> None:
    await _end(context, portrait, PortraitStatus.FAILED, error={"code": code, "message": message})


async def queue_style_generations(context: ServiceContext, portrait: dict[str, Any]) -> None:
    """Queue one generation per style with the trained adapter (idempotent), then mark it generating."""
    model = await context.models.get(portrait["modelId"])
    spec = base_model_registry(context.settings).get(model["baseModel"]) if model else None
    if model is None or spec is None or not model.get("adapterKey"):
        await _fail(context, portrait, "model_unavailable", "the trained model or its base model is gone")
        return
    adapter = model_adapter(model)
    # Generating first: a style's job may end (and its event be handled, on another partition) before the
    # last one is queued, and finishing is only allowed from generating.
    await context.portraits.advance(portrait["jobId"], PortraitStatus.GENERATING)
    for index, style in enumerate(portrait["styles"]):
        data = GenerationRequestedData(
            jobId=style["jobId"],
            modelId=portrait["modelId"],
            baseModel=spec.name,
            prompt=style["prompt"],
            width=spec.default_size,
            height=spec.default_size,
            guidanceScale=spec.default_guidance,
            numOutputs=portrait.get("imagesPerStyle", 1),
            numInferenceSteps=spec.default_steps,
            seed=SEED_BASE + index,
            adapters=[adapter],
            **(
                {"mode": GenerationMode.IMAGE_TO_IMAGE, "initImageKey": style["imageKey"], "strength": STYLE_STRENGTH}
                if style.get("imageKey")
                else {}
            ),
        )
        await queue_generation(
            context,
            portrait["tenantId"],
            data,
            source=SOURCE,
            extra={"portraitId": portrait["jobId"]},
            republish_existing=True,
        )


async def finish_if_done(context: ServiceContext, portrait: dict[str, Any]) -> None:
    """Complete the portrait once every style's job has ended (failed if none produced images)."""
    jobs = [await context.jobs.get(style["jobId"]) for style in portrait["styles"]]
    if any(job is None or not GENERATION.is_terminal(GenerationStatus(job["status"])) for job in jobs):
        return
    done = [job for job in jobs if job and job["status"] == GenerationStatus.COMPLETED.value]
    if done:
        await _end(context, portrait, PortraitStatus.COMPLETED)
    else:
        await _fail(context, portrait, "generation_failed", "no style could be generated")


async def on_lifecycle(context: ServiceContext, event: JobLifecycle) -> None:
    """React to one lifecycle event if it concerns a portrait's training or generations."""
    data = event.data
    if event.type in (JOB_PROGRESS, JOB_CHECKPOINT):
        return  # not status changes
    repository = context.trainings if data.kind == "training" else context.jobs
    job = await repository.get(data.jobId)
    if job is None or not job.get("portraitId"):
        return
    portrait = await context.portraits.get(job["portraitId"])
    if portrait is None:
        if (utcnow() - data.occurredAt).total_seconds() < RECORD_GRACE_S:
            raise PortraitNotYetRecorded(job["portraitId"])
        log.warning("portrait %s of job %s was never recorded: event dropped", job["portraitId"], data.jobId)
        return
    if portrait["status"] in (
        PortraitStatus.COMPLETED,
        PortraitStatus.FAILED,
        PortraitStatus.CANCELED,
    ):
        return
    if data.kind == "training":
        if data.status == TrainingStatus.RUNNING.value:
            # The portrait starts with its training (its webhook's `start`).
            await publish_lifecycle_once(context, portrait, PortraitStatus.TRAINING, SOURCE)
        elif data.status == TrainingStatus.SUCCEEDED.value:
            await queue_style_generations(context, portrait)
        elif data.status == TrainingStatus.FAILED.value:
            message = data.error.message if data.error else "the training failed"
            await _fail(context, portrait, "training_failed", message)
        elif data.status == TrainingStatus.CANCELED.value:
            await _end(context, portrait, PortraitStatus.CANCELED)
    elif GENERATION.is_terminal(GenerationStatus(data.status)):
        await finish_if_done(context, portrait)
