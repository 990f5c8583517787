"""Trainings: the decisions of starting one (alone or with new images), canceling one, and what a
training's end does to its model."""

from __future__ import annotations

import logging
import secrets
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from events.captions import places_trigger, training_prompt
from events.persistence import Advance, AdvanceOutcome
from events.records.jobs import TrainingJob
from events.records.models import ModelRecord
from events.records.training_data import TrainingImageRecord
from events.states import MODEL_STATUS_AFTER_TRAINING, ModelStatus, TrainingStatus, UploadStatus
from events.training import MAX_CAPTION, MAX_TRAINING_IMAGES, TrainingRequestedData
from events.usecases import jobs
from events.usecases.errors import Conflict, Invalid, Unavailable
from events.usecases.lifecycle import publish_lifecycle_once
from events.usecases.ports import Backends, BaseModelSpec, NormalizedImage, QuotaAwareBackends
from events.usecases.quotas import release_storage, require_image_room, reserve_storage
from events.usecases.training_data import new_data_id, store_training_image
from events.usecases.training_params import BaseDefaults, ParameterError, estimated_seconds, resolve_parameters

log = logging.getLogger(__name__)

TRIGGER_ALPHABET = string.ascii_uppercase + string.digits
# Words a training's status is told in when a cancel comes too late (the custom-models API's words).
FINISHED_WORDS = {
    TrainingStatus.QUEUED: "starting",
    TrainingStatus.RUNNING: "processing",
    TrainingStatus.SUCCEEDED: "succeeded",
    TrainingStatus.FAILED: "failed",
    TrainingStatus.CANCELED: "canceled",
}


def new_training_id() -> str:
    """A fresh, unguessable training id."""
    return f"trn_{secrets.token_hex(10)}"


def new_trigger_word() -> str:
    """A rare token that names the model in prompts (the custom-models API's `FJA90AB` shape)."""
    return "".join(secrets.choice(TRIGGER_ALPHABET) for _ in range(7))


def base_model_of(backends: Backends, name: str | None) -> BaseModelSpec:
    """The base model `name` names (or the deployment's default); `Invalid` naming the choices otherwise."""
    registry = backends.base_models
    name = name or backends.settings.default_base_model
    spec = registry.get(name)
    if spec is None:
        choices = sorted(registry)
        raise Invalid(
            "unknown_base_model",
            f"base model {name!r} does not exist here; choose one of: {', '.join(choices)} "
            "(GET /v1/base-models describes them)",
            field="baseModel",
            details={"baseModels": choices},
        )
    return spec


@dataclass(frozen=True)
class TrainingName:
    """How a training to come is named, decided before anything is written (a portrait records it first)."""

    training_id: str
    subject_word: str  # names the subject in the resolved parameters' prompts
    trigger_word: str  # what prompts use to call the trained subject (a concept prompt wins)


def name_training(model: ModelRecord, request_parameters: dict[str, Any] | None = None) -> TrainingName:
    """A new training id and the words the model's next training is known by."""
    subject_word = model.triggerWord or new_trigger_word()
    trigger_word = subject_word
    if request_parameters and request_parameters.get("conceptPrompt"):
        trigger_word = request_parameters["conceptPrompt"]
    elif model.parameters.get("conceptPrompt"):
        trigger_word = model.parameters["conceptPrompt"]
    return TrainingName(new_training_id(), subject_word, trigger_word)


async def ready_images(backends: Backends, model: ModelRecord) -> list[TrainingImageRecord]:
    """The model's images a training can use now; `Conflict` while some are still being validated, or when
    there are none."""
    all_items = await backends.training_data.list(model.modelId)
    pending = [i.dataId for i in all_items if i.status is UploadStatus.PENDING]
    if pending:
        raise Conflict(
            "training_data_pending",
            f"{len(pending)} training image(s) are still being processed ({', '.join(pending[:5])}); "
            "start the training once they read ready or rejected",
            field="modelId",
        )
    items = [i for i in all_items if i.status is UploadStatus.READY]
    if not items:
        raise Conflict(
            "no_training_data", f"model {model.modelId!r} has no training images; upload some first", "modelId"
        )
    return items


def image_captions(
    items: Sequence[TrainingImageRecord], trigger_word: str, concept_prompt: str
) -> list[str | None] | None:
    """What each image trains on, parallel to the images: its description with the trigger word woven in (the word
    the model's prompts call it by; as written when the set places the word with `[trigger]`, see `places_trigger`),
    or None for one without (the concept prompt, or an automatic caption); None when no image has a description."""
    as_written = places_trigger(item.description for item in items)
    # The event bounds a caption: a description near the record's limit loses its tail, not its trigger word.
    captions = [
        training_prompt(item.description, trigger_word, concept_prompt, as_written)[:MAX_CAPTION]
        if item.description
        else None
        for item in items
    ]
    return captions if any(caption is not None for caption in captions) else None


async def take_model(backends: Backends, model: ModelRecord, name: TrainingName) -> None:
    """Move the model to `training` for this training, by a conditional write: of two concurrent requests
    one wins and the other gets `Conflict`."""
    advance = await backends.models.advance(
        model.modelId, ModelStatus.TRAINING, {"trainingId": name.training_id, "triggerWord": name.trigger_word}
    )
    if advance.outcome is not AdvanceOutcome.APPLIED:
        current = advance.record.trainingId if advance.record else None
        raise Conflict("model_training", f"model {model.modelId!r} is already training (training {current})")


async def start_training(
    backends: Backends,
    tenant_id: str,
    model: ModelRecord,
    *,
    source: str,
    model_parameters: dict[str, Any],
    strength: int | None = None,
    speed: str | None = None,
    request_parameters: dict[str, Any] | None = None,
    traceparent: str | None = None,
    extra: dict[str, Any] | None = None,
    name: TrainingName | None = None,
) -> TrainingJob:
    """Queue a training of the model on its current images; returns the training record (with `extra`
    fields, written with it so nothing reacting to the training can see it without them).

    `model_parameters` are the model's stored parameters in canonical form. Everything is checked before the
    model is taken (`take_model`); if the broker then cannot take the command, training and model are failed
    and `Unavailable` raised, so nothing waits forever.
    """
    if model.type.endswith("-composition"):
        raise Invalid("not_trainable", "a composition model combines trained models and is not trained itself")
    spec = base_model_of(backends, model.baseModel)
    items = await ready_images(backends, model)
    name = name or name_training(model, request_parameters)
    try:
        parameters = resolve_parameters(
            image_count=len(items),
            trigger_word=name.subject_word,
            base=BaseDefaults(
                resolution=spec.default_size,
                sample_steps=spec.default_steps,
                family=str(spec.family),
                captioning_available=bool(backends.settings.captioning_model),
            ),
            strength=strength,
            speed=speed,
            model_parameters=model_parameters,
            request_parameters=request_parameters,
        )
    except ParameterError as exc:
        raise Invalid("validation_error", str(exc), field=exc.field or "parameters") from exc
    await take_model(backends, model, name)
    data = TrainingRequestedData(
        trainingId=name.training_id,
        modelId=model.modelId,
        baseModel=spec.name,
        triggerWord=name.trigger_word,
        dataKeys=[i.key for i in items],
        parameters=parameters,
        captions=image_captions(items, name.trigger_word, parameters.conceptPrompt),
    )
    estimate = round(estimated_seconds(parameters, spec.train_steps_per_second), 1)
    record = jobs.training_record(
        tenant_id, data, {"dataIds": [i.dataId for i in items], "estimatedSeconds": estimate, **(extra or {})}
    )
    try:
        return await jobs.queue_job(backends, record, source=source, traceparent=traceparent)
    except Unavailable:
        await backends.models.advance(model.modelId, ModelStatus.FAILED)
        raise


def check_trainable_now(model: ModelRecord, new_image_count: int) -> None:
    """What refuses a train-with-images request before its files are read: too many files, or a model
    already training."""
    if new_image_count > MAX_TRAINING_IMAGES:
        raise Invalid("too_many_images", f"send at most {MAX_TRAINING_IMAGES} images", field="images")
    if model.status is ModelStatus.TRAINING:
        raise Conflict("model_training", f"model {model.modelId!r} is already training (training {model.trainingId})")


async def train_with_images(
    backends: QuotaAwareBackends,
    tenant_id: str,
    model: ModelRecord,
    images: Sequence[tuple[NormalizedImage, str | None]],
    descriptions: Sequence[str | None] | None = None,
    **training: Any,
) -> tuple[TrainingJob, list[str]]:
    """Store the (already validated) images, then start a training on everything the model holds; returns
    the training and the new images' ids. `descriptions`, parallel to `images`, are their captions where they
    have one. `training` is passed on to `start_training`.

    The model's image quota is checked and the images' bytes reserved for all of them at once, so a request
    over a limit stores none of its images."""
    check_trainable_now(model, len(images))
    if not images and not await backends.training_data.list(model.modelId):
        raise Invalid("validation_error", "send at least one image in images[]", field="images")
    await require_image_room(backends, tenant_id, model.modelId, len(images))
    total = sum(image.source_bytes for image, _ in images)
    await reserve_storage(backends, tenant_id, total)
    data_ids = []
    try:
        for index, (image, filename) in enumerate(images):
            description = descriptions[index] if descriptions else None
            item = await store_training_image(
                backends,
                model.modelId,
                tenant_id,
                image,
                new_data_id(),
                filename,
                reserved=True,
                description=description,
            )
            data_ids.append(item.dataId)
            total -= image.source_bytes
    finally:
        # What was reserved and not stored (a write failed) is given back; stored images stay counted.
        await release_storage(backends, tenant_id, total)
    return await start_training(backends, tenant_id, model, **training), data_ids


async def settle_model(
    backends: Backends, training: TrainingJob, outcome: TrainingStatus, fields: dict[str, Any] | None = None
) -> Advance[ModelRecord] | None:
    """Move the model out of `training` to the status `outcome` implies, if this training is still the
    model's current one (a late marker of an older training must not touch a newer one's model)."""
    if training.modelId is None:
        return None
    model = await backends.models.get(training.modelId)
    if model is None or model.trainingId != training.jobId:
        return None
    return await backends.models.advance(model.modelId, MODEL_STATUS_AFTER_TRAINING[outcome], fields)


async def cancel_training(backends: Backends, training: TrainingJob, *, source: str) -> TrainingJob:
    """Cancel a queued training at once, or ask the worker running it to stop at the next step; `Conflict`
    if it already ended."""
    if training.status is TrainingStatus.QUEUED:
        training, canceled = await jobs.cancel_while_queued(backends, training)
        if canceled:
            await settle_model(backends, training, TrainingStatus.CANCELED)
            await publish_lifecycle_once(backends, training, TrainingStatus.CANCELED, source=source)
            return training
    if training.status is TrainingStatus.RUNNING:
        training, asked = await jobs.ask_worker_to_stop(backends, training)
        if asked:
            return training
    raise Conflict(
        "training_finished",
        f"training {training.jobId!r} already {FINISHED_WORDS[training.status]}; there is nothing to cancel",
        field="trainingId",
    )
