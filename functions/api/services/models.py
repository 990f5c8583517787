"""Models: create, read, list, update, rename, delete, and render in each seed's words. No FastAPI here."""

from __future__ import annotations

import asyncio
import secrets
from datetime import datetime
from typing import Any, cast

from events.states import ModelStatus, TrainingStatus
from events.usecases.trainings import base_model_of
from functions.api.errors import ApiError
from functions.api.schemas.models import (
    COMPOSITION_TYPES,
    SUPPORTED_TYPES,
    TRAINABLE_TYPES,
    AssetOut,
    CreateModelRequest,
    EpochOut,
    ModelDetailOut,
    ModelList,
    ModelOut,
    RenameModelRequest,
    TrainingImageOut,
    TrainingProgressOut,
    TrainingStatsOut,
    UpdateModelRequest,
    canonical_parameters,
)
from infra.base_models import BaseModelSpec
from infra.runtime import ServiceContext

CAPABILITIES = ["txt2img", "img2img", "inpaint"]
DEFAULT_NAME = "Untitled model"
TRAINING_IMAGES_SHOWN = 3  # seed 003: "the first 3 training images"


def new_model_id() -> str:
    """A fresh, unguessable model id (seed 000's `mod_…`)."""
    return f"mod_{secrets.token_hex(10)}"


def _family(model_type: str) -> str:
    return model_type.removesuffix("-lora").removesuffix("-composition")


def resolve_base_model(context: ServiceContext, name: str | None) -> BaseModelSpec:
    """The base model a create request names (or the default); 422 naming the choices otherwise."""
    return cast(BaseModelSpec, base_model_of(context, name))


def check_model_type(model_type: str, spec: BaseModelSpec) -> str:
    """A seed 003 type this service supports on `spec`'s family; 422 with the reason otherwise."""
    if model_type not in SUPPORTED_TYPES:
        raise ApiError(
            422,
            "unsupported_model_type",
            f"model type {model_type!r} is not supported: LoRA Foundry trains and composes Stable Diffusion "
            f"LoRA image models ({', '.join(SUPPORTED_TYPES)})",
            field="type",
        )
    if _family(model_type) != _family(spec.model_type):
        raise ApiError(
            422,
            "incompatible_model_type",
            f"model type {model_type!r} does not match base model {spec.name!r} ({spec.model_type})",
            field="type",
        )
    return model_type


async def require_model(context: ServiceContext, tenant_id: str, model_id: str) -> dict[str, Any]:
    """The caller's live model, or 404 (another tenant's or a deleted model looks the same as none)."""
    model = await context.models.get_live(tenant_id, model_id)
    if model is None:
        raise ApiError(404, "model_not_found", f"model {model_id!r} does not exist", field="modelId")
    return model


async def _check_concepts(context: ServiceContext, tenant_id: str, concepts: list[Any], spec: BaseModelSpec) -> None:
    for index, concept in enumerate(concepts):
        other = await context.models.get_live(tenant_id, concept.modelId)
        field = f"concepts.{index}.modelId"
        if other is None:
            raise ApiError(422, "model_not_found", f"concept model {concept.modelId!r} does not exist", field=field)
        if other.get("type") not in TRAINABLE_TYPES or _family(other["type"]) != _family(spec.model_type):
            raise ApiError(
                422,
                "incompatible_concept",
                f"concept model {concept.modelId!r} is not a LoRA on the same base-model family",
                field=field,
            )
        if concept.modelEpoch is not None:
            await check_epoch(context, other, concept.modelEpoch, field=f"concepts.{index}.modelEpoch")
    if len({c.modelId for c in concepts}) != len(concepts):
        raise ApiError(422, "duplicate_concept", "a model is listed twice in concepts; list it once", field="concepts")


async def create_model(context: ServiceContext, tenant_id: str, body: CreateModelRequest) -> dict[str, Any]:
    """Record a new model (status `new`)."""
    spec = resolve_base_model(context, body.baseModel)
    model_type = check_model_type(body.type or spec.model_type, spec)
    if model_type in COMPOSITION_TYPES and body.concepts:
        await _check_concepts(context, tenant_id, body.concepts, spec)
    record = {
        "modelId": new_model_id(),
        "tenantId": tenant_id,
        "name": body.resolved_name or DEFAULT_NAME,
        "description": body.resolved_description,
        "baseModel": spec.name,
        "type": model_type,
        "customModelType": body.customModelType,
        "tags": body.tags or [],
        "parameters": body.parameters.applied() if body.parameters else {},
        "concepts": [c.model_dump(exclude_none=True) for c in body.concepts] if body.concepts else None,
    }
    return await context.models.create(record)


async def rename_model(
    context: ServiceContext, tenant_id: str, model: dict[str, Any], body: RenameModelRequest
) -> dict[str, Any]:
    """Seed 001's rename (and name/description/tags)."""
    fields: dict[str, Any] = {}
    if body.resolved_name:
        fields["name"] = body.resolved_name
    if body.resolved_description is not None:
        fields["description"] = body.resolved_description
    if body.tags is not None:
        fields["tags"] = body.tags
    if not fields:
        return model
    return await context.models.update_fields(model["modelId"], fields, expected_version=model["version"])


async def update_model(
    context: ServiceContext, tenant_id: str, model: dict[str, Any], body: UpdateModelRequest
) -> dict[str, Any]:
    """Seed 003's update: fields present in the body change; `type` only while the model is `new`."""
    spec = resolve_base_model(context, model["baseModel"])
    sent = body.model_fields_set
    fields: dict[str, Any] = {}
    unset: list[str] = []
    if body.resolved_name:
        fields["name"] = body.resolved_name
    if body.resolved_description is not None:
        fields["description"] = body.resolved_description
    if body.tags is not None:
        fields["tags"] = body.tags
    if "type" in sent and body.type is not None and body.type != model["type"]:
        if model["status"] != ModelStatus.NEW.value:
            raise ApiError(
                409,
                "model_type_locked",
                f"the type can only be changed while the model is 'new'; this model is {model['status']!r}",
                field="type",
            )
        fields["type"] = check_model_type(body.type, spec)
    if body.parameters is not None:
        if model["status"] == ModelStatus.TRAINING.value:
            raise ApiError(
                409, "model_training", "parameters cannot change while the model is training", field="parameters"
            )
        # Canonical only: aliases folded in, ignored fields (the wandbKey secret among them) dropped.
        fields["parameters"] = body.parameters.applied()
    if "concepts" in sent:
        if body.concepts:
            await _check_concepts(context, tenant_id, body.concepts, spec)
            fields["concepts"] = [c.model_dump(exclude_none=True) for c in body.concepts]
        else:
            unset.append("concepts")
    if "epoch" in sent:
        if body.epoch is None:
            unset.append("epoch")
        else:
            await check_epoch(context, model, body.epoch)
            fields["epoch"] = body.epoch
    for name in ("classSlug", "thumbnail", "promptEmbedding", "negativePromptEmbedding"):
        if name in sent:
            value = getattr(body, name)
            if value is None:
                unset.append(name)
            else:
                fields[name] = value
    if not fields and not unset:
        return model
    return await context.models.update_fields(model["modelId"], fields, expected_version=model["version"], remove=unset)


async def check_epoch(context: ServiceContext, model: dict[str, Any], epoch: str, field: str = "epoch") -> None:
    """409 unless the model is trained, 422 unless its adapter's training has that epoch."""
    if model["status"] != ModelStatus.TRAINED.value:
        raise ApiError(
            409,
            "model_not_trained",
            f"model {model['modelId']!r}: an epoch can only be chosen once it is trained",
            field=field,
        )
    training = await context.trainings.get(model["adapterTrainingId"]) if model.get("adapterTrainingId") else None
    if training is None or epoch not in (training.get("epochs") or {}):
        known = ", ".join(sorted((training or {}).get("epochs") or {})) or "none"
        raise ApiError(
            422,
            "unknown_epoch",
            f"epoch {epoch!r} of model {model['modelId']!r} does not exist; it has: {known}",
            field=field,
        )


async def soft_delete_model(context: ServiceContext, model: dict[str, Any]) -> None:
    """Hide a model from its owner for good; the record and its trainings stay for history."""
    await context.models.soft_delete(model["modelId"])


# Seed 000 vocabulary for the model's status, given the model and its latest training.
def seed000_status(model: dict[str, Any], training: dict[str, Any] | None) -> str:
    """`pending_training`, `training_queued`, `training`, `active` or `failed` (seed 000's words)."""
    status = ModelStatus(model["status"])
    if status is ModelStatus.TRAINING:
        queued = training is not None and training["status"] == TrainingStatus.QUEUED.value
        return "training_queued" if queued else "training"
    if status is ModelStatus.TRAINED:
        return "active"
    if status is ModelStatus.FAILED:
        return "failed"
    if status is ModelStatus.TRAINING_CANCELED and model.get("adapterKey"):
        return "active"  # an earlier training's adapter still serves
    return "pending_training"


# The list's `status` filter takes seed 000's words and seed 003's.
STATUS_FILTERS = (
    "pending_training",
    "training_queued",
    "training",
    "active",
    "failed",
    "new",
    "trained",
    "training-canceled",
)


def model_out(model: dict[str, Any], training: dict[str, Any] | None, image_count: int) -> ModelOut:
    """The flat view of seeds 000 and 001."""
    return ModelOut(
        modelId=model["modelId"],
        id=model["modelId"],
        name=model["name"],
        displayName=model["name"],
        description=model.get("description"),
        status=seed000_status(model, training),
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


async def latest_training(context: ServiceContext, model: dict[str, Any]) -> dict[str, Any] | None:
    """The model's most recent training record, if it ever trained."""
    return await context.trainings.get(model["trainingId"]) if model.get("trainingId") else None


async def render_model(context: ServiceContext, model: dict[str, Any]) -> ModelOut:
    """The flat view, reading the latest training and counting images."""
    training, items = await asyncio.gather(
        latest_training(context, model), context.training_data.list(model["modelId"])
    )
    return model_out(model, training, len(items))


def matches_status(model: dict[str, Any], training: dict[str, Any] | None, wanted: str) -> bool:
    """Whether a model has `wanted` status in either seed's words."""
    return wanted in (model["status"], seed000_status(model, training))


async def list_models(
    context: ServiceContext, tenant_id: str, limit: int, offset: int, status: str | None
) -> ModelList:
    """Seed 000's paginated list, newest first, optionally filtered by status (either seed's words)."""
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


def _ms(iso: str | None) -> int | None:
    return int(datetime.fromisoformat(iso).timestamp() * 1000) if iso else None


def _seconds_between(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return round((datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds(), 3)


async def queue_position(context: ServiceContext, training: dict[str, Any]) -> int:
    """How many trainings wait ahead of this queued one (seed 003's `position`)."""
    return await context.trainings.count_queued_before(training["createdAt"])


async def training_progress_out(context: ServiceContext, training: dict[str, Any] | None) -> TrainingProgressOut | None:
    """Seed 003's trainingProgress of a training that is not finished."""
    if training is None or training["status"] not in (TrainingStatus.QUEUED.value, TrainingStatus.RUNNING.value):
        return None
    updated = _ms(training["updatedAt"]) or 0
    if training["status"] == TrainingStatus.QUEUED.value:
        return TrainingProgressOut(
            stage="queued-for-train", updatedAt=updated, position=await queue_position(context, training)
        )
    progress = training.get("progress") or {}
    return TrainingProgressOut(
        stage=progress.get("stage", "starting-train"),
        updatedAt=_ms(progress.get("updatedAt")) or updated,
        position=0,
        progress=round(progress["step"] / progress["totalSteps"], 4) if progress else 0.0,
        remainingTimeMs=progress.get("remainingTimeMs"),
        startedAt=_ms(training.get("startedAt")),
    )


async def render_model_detail(context: ServiceContext, model: dict[str, Any]) -> ModelDetailOut:
    """Seed 003's model object."""
    training, items = await asyncio.gather(
        latest_training(context, model), context.training_data.list(model["modelId"])
    )
    expiry = context.settings.presign_expiry_seconds
    adapter_training = training
    if model.get("adapterTrainingId") and (training is None or training["jobId"] != model["adapterTrainingId"]):
        adapter_training = await context.trainings.get(model["adapterTrainingId"])
    epochs: list[EpochOut] = []
    for name, info in sorted(((adapter_training or {}).get("epochs") or {}).items()):
        urls = await asyncio.gather(*(context.store.presign_get(k, expiry) for k in info.get("sampleKeys", [])))
        epochs.append(
            EpochOut(
                epoch=name,
                assets=[AssetOut(assetId=f"{name}-{i}", url=u) for i, u in enumerate(urls)],
            )
        )
    # Only a ready image has normalized bytes to download; a pending or rejected one is counted, not shown.
    shown = [i for i in items if i.get("status", "ready") == "ready"][:TRAINING_IMAGES_SHOWN]
    download_urls = await asyncio.gather(*(context.store.presign_get(i["key"], expiry) for i in shown))
    stats = None
    if training is not None and training.get("startedAt"):
        stats = TrainingStatsOut(
            startedAt=training.get("startedAt"),
            endedAt=training.get("completedAt"),
            queueDuration=_seconds_between(training["createdAt"], training.get("startedAt")),
            trainDuration=_seconds_between(training.get("startedAt"), training.get("completedAt")),
        )
    thumbnail = {"assetId": model["thumbnail"], "url": ""} if model.get("thumbnail") else None
    return ModelDetailOut(
        id=model["modelId"],
        modelId=model["modelId"],
        capabilities=CAPABILITIES,
        createdAt=model["createdAt"],
        updatedAt=model["updatedAt"],
        status=model["status"],
        tags=model.get("tags") or [],
        trainingImagesNumber=len(items),
        type=model["type"],
        name=model["name"],
        displayName=model["name"],
        shortDescription=model.get("description"),
        description=model.get("description"),
        baseModel=model["baseModel"],
        ownerId=model["tenantId"],
        modelKeyword=model.get("triggerWord"),
        parameters=canonical_parameters(model.get("parameters")),
        concepts=model.get("concepts"),
        epoch=model.get("epoch"),
        epochs=epochs,
        trainingImages=[
            TrainingImageOut(
                id=i["dataId"], createdAt=i["createdAt"], downloadUrl=url, name=i.get("name") or f"{i['dataId']}.png"
            )
            for i, url in zip(shown, download_urls, strict=True)
        ],
        trainingProgress=await training_progress_out(context, training),
        trainingStats=stats,
        classSlug=model.get("classSlug"),
        thumbnail=thumbnail,
        promptEmbedding=model.get("promptEmbedding"),
        negativePromptEmbedding=model.get("negativePromptEmbedding"),
    )
