"""The headshot API's portraits: photos of one person in, a trained LoRA and each chosen style's images out.

The API gathers and squares the photos, creates the model and queues its training, and records the portrait
with each style's prompt and (deterministic) generation job id. The generations are queued later by
`functions/portraits`, when the training's completion event arrives on the lifecycle topic.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any

from events.records.jobs import PortraitJob, PortraitStyle
from events.states import JobKind
from events.storage_keys import JobInput, job_input_key
from events.usecases import portraits
from events.usecases.errors import UseCaseError
from events.usecases.quotas import check_training_images, limits_of, release_storage, require_job_slot, reserve_storage
from events.usecases.training_data import store_training_image
from events.usecases.trainings import name_training
from functions.api.errors import ApiError
from functions.api.schemas.models import CreateModelRequest
from functions.api.schemas.portraits import CreatePortraitRequest
from functions.api.services.models import create_model, soft_delete_model
from functions.api.services.training_data import new_data_id, validate_image
from functions.api.services.trainings import start_training
from functions.api.services.uploads import UPLOAD_KEY_PREFIX, read_upload_image
from functions.api.services.webhooks import webhook_record
from infra.egress import EgressRefused, fetch_limited, guarded_client
from infra.images import NormalizedImage, pad_to_square
from infra.metrics import JOBS_SUBMITTED
from infra.runtime import ServiceContext


@dataclass(frozen=True)
class Style:
    """A portrait style: what the user picks, and the prompt it adds."""

    id: str
    name: str
    prompt: str
    genders: tuple[str, ...] = ("man", "woman")
    image: NormalizedImage | None = None  # an uploaded style image: generated image-to-image from it


STYLES = (
    Style("business", "Business headshot", "professional corporate headshot, suit, office background, soft light"),
    Style("outdoor", "Outdoor", "natural light portrait outdoors, park, shallow depth of field"),
    Style("studio", "Studio", "studio portrait, plain grey backdrop, rim light"),
    Style("cyberpunk", "Cyberpunk", "cyberpunk portrait, neon city at night, rain"),
    Style("watercolor", "Watercolor", "watercolor painting portrait, soft pastel colours"),
    Style("gentleman", "Gentleman", "classic gentleman portrait, tweed jacket, library background", ("man",)),
    Style("elegant", "Elegant", "elegant evening portrait, gown, golden hour light", ("woman",)),
)


def portrait_prompt(trigger_word: str, gender: str, customizations: str, style: Style) -> str:
    """The prompt of one style: the trained subject, their features, then the style."""
    parts = [f"a photo of {trigger_word} {gender}", customizations, style.prompt]
    return ", ".join(p for p in parts if p)


async def _pick_styles(context: ServiceContext, tenant_id: str, body: CreatePortraitRequest) -> list[Style]:
    offered = {s.id: s for s in STYLES if body.gender in s.genders}
    chosen = []
    for index, style_id in enumerate(body.styles):
        if style_id.startswith(UPLOAD_KEY_PREFIX):
            # The headshot API's "uploaded style image": the subject is painted into it (image-to-image).
            image = await read_upload_image(context, tenant_id, style_id, field=f"styles.{index}")
            chosen.append(Style(style_id, "Uploaded style", "", image=image))
        elif style_id in offered:
            chosen.append(offered[style_id])
        else:
            raise ApiError(
                422,
                "unknown_style",
                f"style {style_id!r} is not offered for {body.gender}; choose from: {', '.join(offered)}, "
                "or send the key of an uploaded style image",
                field=f"styles.{index}",
            )
    return chosen


async def _from_url(context: ServiceContext, client: Any, index: int, url: str) -> NormalizedImage:
    settings = context.settings
    try:
        fetched = await fetch_limited(client, url, settings.max_image_bytes, settings.url_fetch_timeout_seconds)
    except EgressRefused as exc:
        raise ApiError(422, "image_url_unusable", str(exc), field=f"imageUrls.{index}") from exc
    return await validate_image(context, fetched.body, field=f"imageUrls.{index}")


async def gather_photos(context: ServiceContext, tenant_id: str, body: CreatePortraitRequest) -> list[NormalizedImage]:
    """Fetch (safely) and validate every photo, squared with white padding; the first problem is a 422."""
    settings = context.settings
    async with guarded_client(settings.egress_allowed_networks, settings.url_fetch_timeout_seconds) as client:
        images = await asyncio.gather(
            *(_from_url(context, client, i, str(url)) for i, url in enumerate(body.imageUrls)),
            *(read_upload_image(context, tenant_id, key, f"imageKeys.{i}") for i, key in enumerate(body.imageKeys)),
        )
    size = settings.portrait_image_size
    return [await asyncio.to_thread(pad_to_square, image, size) for image in images]


def new_portrait_id() -> str:
    """A fresh portrait id."""
    return f"prt_{secrets.token_hex(10)}"


async def create_portrait(
    context: ServiceContext,
    tenant_id: str,
    body: CreatePortraitRequest,
    request_parameters: dict[str, Any] | None,
    traceparent: str | None,
) -> PortraitJob:
    """Validate everything, then model, images, the portrait record, and last its training (tagged with the
    portrait, so whatever the training's events cause finds the portrait written)."""
    webhook = webhook_record(context, body)
    # A portrait queues a training: it counts there, and its photos are its model's training images.
    await require_job_slot(context, tenant_id, JobKind.TRAINING)
    check_training_images(await limits_of(context, tenant_id), 0, len(body.imageUrls) + len(body.imageKeys))
    styles = await _pick_styles(context, tenant_id, body)
    photos = await gather_photos(context, tenant_id, body)
    # Every photo's bytes at once, before the model is made: over the storage quota, nothing is left behind.
    unstored = sum(photo.source_bytes for photo in photos)
    await reserve_storage(context, tenant_id, unstored)
    try:
        portrait_id = new_portrait_id()
        job_ids = portraits.style_job_ids(portrait_id, len(styles))
        model = await create_model(
            context, tenant_id, CreateModelRequest(name=body.name or f"Portrait ({body.gender})", tags=["portrait"])
        )
        for photo in photos:
            await store_training_image(context, model.modelId, tenant_id, photo, new_data_id(), reserved=True)
            unstored -= photo.source_bytes
    finally:
        await release_storage(context, tenant_id, unstored)
    style_images: dict[int, str] = {}
    for index, style in enumerate(styles):
        if style.image is not None:
            # Copied under the style's job: the upload expires after 24 h, the training may take longer.
            key = job_input_key(job_ids[index], JobInput.IMAGE)
            square = await asyncio.to_thread(pad_to_square, style.image, context.settings.portrait_image_size)
            await context.store.put_bytes(key, square.png, "image/png")
            style_images[index] = key
    name = name_training(model, request_parameters)
    portrait = await portraits.record_portrait(
        context,
        PortraitJob(
            jobId=portrait_id,
            tenantId=tenant_id,
            modelId=model.modelId,
            trainingId=name.training_id,
            gender=body.gender,
            customizations=body.customizations,
            **webhook,
            imagesPerStyle=body.imagesPerStyle,
            styles=[
                PortraitStyle(
                    id=style.id,
                    name=style.name,
                    prompt=portrait_prompt(name.trigger_word, body.gender, body.customizations, style),
                    jobId=job_ids[index],
                    imageKey=style_images.get(index),
                )
                for index, style in enumerate(styles)
            ],
        ),
    )
    try:
        await start_training(
            context,
            tenant_id,
            model,
            speed="high_quality",
            request_parameters=request_parameters,
            traceparent=traceparent,
            extra={"portraitId": portrait_id},
            name=name,
        )
    except (ApiError, UseCaseError) as exc:
        # The caller gets the error and no portrait: neither it nor the model made for it may linger.
        await portraits.abandon_portrait(context, portrait_id, exc if isinstance(exc, UseCaseError) else None)
        await soft_delete_model(context, model)
        raise
    JOBS_SUBMITTED.labels(kind=JobKind.PORTRAIT.value).inc()
    return portrait
