"""Submitting generation jobs. Plain functions, no FastAPI; the job view is in functions/api/dialects/realm_style.py."""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
from dataclasses import dataclass, replace
from typing import Any

from events import generation as contract
from events.generation import GenerationMode, GenerationRequestedData, OutputFormat
from events.records.jobs import GenerationJob
from events.states import JobKind
from events.storage_keys import JobInput, job_input_key
from events.usecases import jobs
from events.usecases.quotas import require_job_slot
from functions.api.errors import ApiError
from functions.api.schemas.images import GenerateImageRequest, ModifyImageForm
from functions.api.services.adapters import ResolvedModel, resolve_model
from functions.api.services.uploads import read_upload_image
from functions.api.services.webhooks import webhook_record
from infra.base_models import BaseModelSpec
from infra.images import ImageRejected, NormalizedImage, binary_mask, fit_for_generation, normalize_image
from infra.metrics import JOBS_SUBMITTED
from infra.runtime import ServiceContext

log = logging.getLogger(__name__)

SOURCE = "/lorafoundry/api"


def new_job_id() -> str:
    """A fresh, unguessable job id."""
    return f"job_{secrets.token_hex(12)}"


@dataclass(frozen=True)
class GenerationOptions:
    """What a request asks for, in any dialect's words mapped to ours; None means the model's default."""

    model_id: str
    prompt: str
    negative_prompt: str | None = None
    width: int | None = None
    height: int | None = None
    guidance_scale: float | None = None
    num_outputs: int = 1
    num_inference_steps: int | None = None
    seed: int | None = None
    output_format: OutputFormat = OutputFormat.PNG
    # The request's own names for width and height, so an error points at the field the client sent.
    size_fields: tuple[str, str] = ("width", "height")

    @classmethod
    def of(cls, body: GenerateImageRequest | ModifyImageForm) -> GenerationOptions:
        """The options of a Realm-style images request."""
        return cls(
            model_id=body.modelId,
            prompt=body.prompt,
            negative_prompt=body.negativePrompt,
            width=getattr(body, "width", None),
            height=getattr(body, "height", None),
            guidance_scale=body.guidanceScale,
            num_outputs=body.numOutputs,
            num_inference_steps=body.numInferenceSteps,
            seed=body.seed,
            output_format=body.outputFormat,
        )


def side_multiple(spec: BaseModelSpec) -> int:
    """What every side of the base model's images is a multiple of (the contract's 8, FLUX's 16)."""
    return math.lcm(contract.SIDE_MULTIPLE, spec.size_multiple)


def check_side(spec: BaseModelSpec, name: str, value: int) -> None:
    """422 unless `value` is a side the base model generates: at most its largest, a multiple of its multiple."""
    if value > spec.max_side:
        raise ApiError(
            422, "validation_error", f"{name} must be at most {spec.max_side} for model {spec.name}", field=name
        )
    multiple = side_multiple(spec)
    if value % multiple:
        raise ApiError(
            422,
            "validation_error",
            f"{name} must be a multiple of {multiple} for model {spec.name} ({spec.family.value}); "
            f"{value} is not (try {max(multiple, round(value / multiple) * multiple)})",
            field=name,
        )


def build_generation(
    job_id: str,
    options: GenerationOptions,
    resolved: ResolvedModel,
    *,
    mode: GenerationMode = GenerationMode.TEXT_TO_IMAGE,
    inputs: tuple[str | None, str | None] = (None, None),
    strength: float | None = None,
) -> GenerationRequestedData:
    """The worker's command for one request: defaults from the model filled in, model limits checked."""
    spec = resolved.spec
    for name, value in zip(options.size_fields, (options.width, options.height), strict=True):
        if value is not None:
            check_side(spec, name, value)
    return GenerationRequestedData(
        jobId=job_id,
        mode=mode,
        modelId=options.model_id,
        baseModel=spec.name,
        prompt=options.prompt,
        negativePrompt=options.negative_prompt,
        width=options.width or spec.default_size,
        height=options.height or spec.default_size,
        guidanceScale=spec.default_guidance if options.guidance_scale is None else options.guidance_scale,
        numOutputs=options.num_outputs,
        numInferenceSteps=options.num_inference_steps or spec.default_steps,
        seed=secrets.randbelow(2**32) if options.seed is None else options.seed,
        outputFormat=options.output_format,
        adapters=resolved.adapters,
        initImageKey=inputs[0],
        maskImageKey=inputs[1],
        strength=strength,
    )


async def queue(
    context: ServiceContext,
    tenant_id: str,
    data: GenerationRequestedData,
    traceparent: str | None,
    extra: dict[str, Any] | None = None,
) -> GenerationJob:
    """Queue a built command for the API, with `extra` job fields (its webhook, a prediction's labels);
    returns the job record (`Unavailable` if the queue is down)."""
    job = await jobs.queue_generation(context, tenant_id, data, source=SOURCE, traceparent=traceparent, extra=extra)
    JOBS_SUBMITTED.labels(kind=JobKind.GENERATION.value).inc()
    return job


async def submit_generation(
    context: ServiceContext, tenant_id: str, body: GenerateImageRequest, traceparent: str | None = None
) -> GenerationJob:
    """Queue the text-to-image job a Realm-style images request describes; returns the job record."""
    webhook = webhook_record(context, body)
    resolved = await resolve_model(context, tenant_id, body.modelId)
    data = build_generation(new_job_id(), GenerationOptions.of(body), resolved)
    await require_job_slot(context, tenant_id, JobKind.GENERATION)
    return await queue(context, tenant_id, data, traceparent, extra=webhook)


async def _read_image(context: ServiceContext, data: bytes, field: str) -> NormalizedImage:
    try:
        # No downscaling here (the pixel limit bounds memory): the mask is checked against the image's size
        # as sent, and fitting to the model comes after.
        return await asyncio.to_thread(
            normalize_image,
            data,
            max_bytes=context.settings.max_image_bytes,
            max_pixels=context.settings.max_image_pixels,
            max_side=context.settings.max_image_pixels,
        )
    except ImageRejected as exc:
        raise ApiError(exc.status, exc.code, f"{field}: {exc}", field=field) from exc


async def _input_image(
    context: ServiceContext, tenant_id: str, data: bytes | None, upload_key: str | None, field: str
) -> NormalizedImage:
    if upload_key is not None:
        return await read_upload_image(context, tenant_id, upload_key, f"{field}Key")
    assert data is not None  # the form's validator requires one source
    return await _read_image(context, data, field)


async def submit_modify(
    context: ServiceContext,
    tenant_id: str,
    form: ModifyImageForm,
    image_bytes: bytes | None,
    mask_bytes: bytes | None,
    traceparent: str | None = None,
) -> GenerationJob:
    """Queue the image-to-image (or, with a mask, inpainting) job a Realm-style images modify request describes.

    Everything is checked before anything is written: the model, the image, the mask's size against the
    image's. The inputs are stored under the job's prefix, then the job is queued."""
    webhook = webhook_record(context, form)
    resolved = await resolve_model(context, tenant_id, form.modelId)
    # Before the images are read and stored: a request over the limit costs nothing.
    await require_job_slot(context, tenant_id, JobKind.GENERATION)
    image = await _input_image(context, tenant_id, image_bytes, form.imageKey, "image")
    mask = None
    if mask_bytes is not None or form.maskKey is not None:
        mask = await _input_image(context, tenant_id, mask_bytes, form.maskKey, "mask")
    if mask is not None and (mask.width, mask.height) != (image.width, image.height):
        raise ApiError(
            422,
            "mask_size_mismatch",
            f"the mask is {mask.width}x{mask.height} but the image is {image.width}x{image.height}; "
            "they must be the same size",
            field="maskKey" if form.maskKey is not None else "mask",
        )
    try:
        fitted = await asyncio.to_thread(
            fit_for_generation,
            image,
            max_side=resolved.spec.max_side,
            min_side=contract.MIN_SIDE,
            multiple=side_multiple(resolved.spec),
        )
        mask_png = await asyncio.to_thread(binary_mask, mask, (fitted.width, fitted.height)) if mask else None
    except ImageRejected as exc:
        field = ("maskKey" if form.maskKey else "mask") if exc.code == "empty_mask" else "image"
        raise ApiError(exc.status, exc.code, str(exc), field=field) from exc
    job_id = new_job_id()
    image_key = job_input_key(job_id, JobInput.IMAGE)
    mask_key = job_input_key(job_id, JobInput.MASK) if mask_png is not None else None
    options = replace(GenerationOptions.of(form), width=fitted.width, height=fitted.height)
    data = build_generation(
        job_id,
        options,
        resolved,
        mode=GenerationMode.INPAINTING if mask_key else GenerationMode.IMAGE_TO_IMAGE,
        inputs=(image_key, mask_key),
        strength=form.strength,
    )
    await context.store.put_bytes(image_key, fitted.png, "image/png")
    if mask_key is not None and mask_png is not None:
        await context.store.put_bytes(mask_key, mask_png, "image/png")
    return await queue(context, tenant_id, data, traceparent, extra=webhook)
