"""Submitting generation jobs and rendering them in seed 002's words. Plain functions, no FastAPI."""

from __future__ import annotations

import asyncio
import logging
import secrets
from datetime import datetime
from typing import Any

from events.generation import AdapterRef, GenerationRequestedData
from events.states import GenerationStatus, ModelStatus
from functions.api.errors import ApiError
from functions.api.schemas.images import (
    AdapterUsedOut,
    GenerateImageRequest,
    ImageOut,
    JobErrorOut,
    JobParameters,
    JobView,
)
from infra.base_models import BaseModelSpec, base_model_registry
from infra.generation_queue import QueueUnavailable, queue_generation
from infra.model_adapter import model_adapter
from infra.runtime import ServiceContext

log = logging.getLogger(__name__)


def new_job_id() -> str:
    """A fresh, unguessable job id."""
    return f"job_{secrets.token_hex(12)}"


async def resolve_model(
    context: ServiceContext, tenant_id: str, model_id: str
) -> tuple[BaseModelSpec, list[AdapterRef]]:
    """The base model and adapters a request's `modelId` means: a base model's name, or one of the
    caller's trained models (its adapter on its base model). 404 naming the field if there is none."""
    registry = base_model_registry(context.settings)
    spec = registry.get(model_id)
    if spec is not None:
        return spec, []
    model = await context.models.get_live(tenant_id, model_id)
    if model is None:
        raise ApiError(404, "model_not_found", f"model {model_id!r} does not exist", field="modelId")
    if model["status"] != ModelStatus.TRAINED.value or not model.get("adapterKey"):
        raise ApiError(
            409,
            "model_not_trained",
            f"model {model_id!r} is {model['status']}: it can generate once a training has succeeded",
            field="modelId",
        )
    spec = registry.get(model["baseModel"])
    if spec is None:
        raise ApiError(
            409, "base_model_unavailable", f"base model {model['baseModel']!r} is not served here", field="modelId"
        )
    return spec, [model_adapter(model)]


def build_generation(
    job_id: str, body: GenerateImageRequest, spec: BaseModelSpec, adapters: list[AdapterRef]
) -> GenerationRequestedData:
    """The worker's command for one request: defaults from the model filled in, model limits checked."""
    for name in ("width", "height"):
        value = getattr(body, name)
        if value is not None and value > spec.max_side:
            raise ApiError(
                422, "validation_error", f"{name} must be at most {spec.max_side} for model {spec.name}", field=name
            )
    return GenerationRequestedData(
        jobId=job_id,
        modelId=body.modelId,
        baseModel=spec.name,
        prompt=body.prompt,
        negativePrompt=body.negativePrompt,
        width=body.width or spec.default_size,
        height=body.height or spec.default_size,
        guidanceScale=spec.default_guidance if body.guidanceScale is None else body.guidanceScale,
        numOutputs=body.numOutputs,
        numInferenceSteps=body.numInferenceSteps or spec.default_steps,
        seed=secrets.randbelow(2**32) if body.seed is None else body.seed,
        outputFormat=body.outputFormat,
        adapters=adapters,
    )


async def submit_generation(
    context: ServiceContext, tenant_id: str, body: GenerateImageRequest, traceparent: str | None = None
) -> dict[str, Any]:
    """Queue the job a seed 002 request describes; returns the job record (503 if the queue is down)."""
    spec, adapters = await resolve_model(context, tenant_id, body.modelId)
    data = build_generation(new_job_id(), body, spec, adapters)
    try:
        return await queue_generation(context, tenant_id, data, source="/lorafoundry/api", traceparent=traceparent)
    except QueueUnavailable as exc:
        raise ApiError(503, "queue_unavailable", str(exc), headers={"Retry-After": "5"}) from exc


_SEED002_STATUS = {
    GenerationStatus.QUEUED: "queued",
    GenerationStatus.PROCESSING: "processing",
    GenerationStatus.COMPLETED: "completed",
    GenerationStatus.FAILED: "failed",
    # Seed 002 has no canceled status: a canceled job reads as failed with error code "canceled".
    GenerationStatus.CANCELED: "failed",
}


def _ms_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() * 1000, 1)


async def render_job(context: ServiceContext, job: dict[str, Any]) -> JobView:
    """A job as seed 002 shows it, with fresh presigned URLs for completed images."""
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
    return JobView(
        jobId=job["jobId"],
        status=_SEED002_STATUS[status],  # type: ignore[arg-type]
        type=request.get("mode", "text-to-image"),
        modelId=job["modelId"],
        prompt=request["prompt"],
        parameters=JobParameters(**{k: request.get(k) for k in JobParameters.model_fields}),
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
    )
