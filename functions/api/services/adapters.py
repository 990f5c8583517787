"""Which base model and LoRA adapters a generation request means, checked before anything is queued.

A request names a base model, a trained LoRA model (its chosen epoch or final adapter), a composition model
(the Scenario-style API: several LoRA models with scales and epochs) or, in the custom-models API, model/training
pairs with scales.
Whatever the words, it comes out as one base model plus adapters that were all trained on it; anything that
cannot run (an untrained model, an unknown epoch, adapters of different base models) is a 4xx here rather
than a failed job later.
"""

from __future__ import annotations

from dataclasses import dataclass

from events.generation import AdapterRef
from events.records.models import ModelRecord
from events.states import ModelStatus, TrainingStatus
from events.storage_keys import is_import_id
from events.usecases.adapters import model_adapter
from functions.api.errors import ApiError
from functions.api.schemas.models import COMPOSITION_TYPES
from functions.api.services.models import check_epoch
from functions.api.services.trainings import require_training
from infra.base_models import BaseModelSpec
from infra.runtime import ServiceContext


@dataclass(frozen=True)
class AdapterChoice:
    """One adapter with the base model it was trained on and the request field that chose it."""

    adapter: AdapterRef
    base_model: str
    field: str


@dataclass(frozen=True)
class ResolvedModel:
    """The base model a request runs on and the adapters it mixes in (none: the base model alone)."""

    spec: BaseModelSpec
    adapters: list[AdapterRef]


def _spec(context: ServiceContext, name: str, field: str) -> BaseModelSpec:
    spec = context.base_models.get(name)
    if spec is None:
        raise ApiError(409, "base_model_unavailable", f"base model {name!r} is not served here", field=field)
    return spec


def combine(context: ServiceContext, choices: list[AdapterChoice], field: str) -> ResolvedModel:
    """The adapters as one request: a single base model they were all trained on, no adapter twice."""
    bases = {choice.base_model for choice in choices}
    if len(bases) > 1:
        listed = ", ".join(f"{c.adapter.modelId} ({c.base_model})" for c in choices)
        raise ApiError(
            422,
            "incompatible_base_models",
            f"adapters trained on different base models cannot be mixed: {listed}",
            field=field,
        )
    seen: dict[str, AdapterChoice] = {}
    for choice in choices:
        if choice.adapter.key in seen:
            raise ApiError(
                422,
                "duplicate_adapter",
                f"{choice.field} names the same adapter as {seen[choice.adapter.key].field}; "
                "list it once with the combined scale",
                field=choice.field,
            )
        seen[choice.adapter.key] = choice
    return ResolvedModel(spec=_spec(context, bases.pop(), field), adapters=[c.adapter for c in choices])


async def trained_model_adapter(
    context: ServiceContext,
    tenant_id: str,
    model_id: str,
    *,
    field: str,
    scale: float = 1.0,
    epoch: str | None = None,
) -> AdapterChoice:
    """A trained LoRA model's adapter: `epoch` if given, else the model's chosen epoch, else its final one."""
    model = await context.models.get_live(tenant_id, model_id)
    if model is None:
        raise ApiError(404, "model_not_found", f"model {model_id!r} does not exist", field=field)
    if model.type in COMPOSITION_TYPES:
        raise ApiError(
            422, "composition_not_allowed", f"model {model_id!r} is a composition; name its LoRA models", field=field
        )
    if model.status is not ModelStatus.TRAINED or not model.adapterKey:
        raise ApiError(
            409,
            "model_not_trained",
            f"model {model_id!r} is {model.status.value}: it can generate once a training has succeeded",
            field=field,
        )
    chosen = epoch or model.epoch
    if chosen is not None:
        await check_epoch(context, model, chosen, field=field)
    adapter = model_adapter(model.model_copy(update={"epoch": chosen}), scale)
    return AdapterChoice(adapter=adapter, base_model=model.baseModel, field=field)


async def training_adapter(
    context: ServiceContext, tenant_id: str, model_id: str, training_id: str, *, scale: float, field: str
) -> AdapterChoice:
    """The final adapter of one succeeded training of one of the caller's models (custom-models `scaleConfigs`)."""
    model = await context.models.get_live(tenant_id, model_id)
    if model is None:
        raise ApiError(404, "model_not_found", f"model {model_id!r} does not exist", field=f"{field}.modelId")
    if is_import_id(training_id):
        # An import is no training: its adapter is the model's while the model serves it (a later import or
        # training replaced it otherwise).
        if model.adapterTrainingId != training_id or not model.adapterKey:
            raise ApiError(
                404,
                "training_not_found",
                f"model {model_id!r} does not serve an import {training_id!r}",
                field=f"{field}.trainingId",
            )
        adapter = AdapterRef(modelId=model_id, trainingId=training_id, key=model.adapterKey, scale=scale)
        return AdapterChoice(adapter=adapter, base_model=model.baseModel, field=field)
    # A soft-deleted training only leaves the listings: its adapter keeps serving.
    training = await require_training(
        context, tenant_id, model_id, training_id, field=f"{field}.trainingId", include_deleted=True
    )
    if training.status is not TrainingStatus.SUCCEEDED or not training.adapterKey:
        raise ApiError(
            409,
            "training_not_succeeded",
            f"training {training_id!r} is {training.status.value}: only a succeeded training has an adapter",
            field=f"{field}.trainingId",
        )
    adapter = AdapterRef(modelId=model_id, trainingId=training_id, key=training.adapterKey, scale=scale)
    return AdapterChoice(adapter=adapter, base_model=model.baseModel, field=field)


async def composition_adapters(
    context: ServiceContext, tenant_id: str, model: ModelRecord, field: str
) -> list[AdapterChoice]:
    """A composition model's concepts (Scenario-style) as adapters, each at its `modelEpoch` or its chosen epoch."""
    concepts = model.concepts or []
    if not concepts:
        raise ApiError(
            409,
            "composition_without_concepts",
            f"composition model {model.modelId!r} has no concepts; set them with PUT /v1/models/{{id}}",
            field=field,
        )
    choices = []
    for index, concept in enumerate(concepts):
        choice = await trained_model_adapter(
            context,
            tenant_id,
            concept.modelId,
            field=f"concepts.{index}.modelId",
            scale=concept.scale,
            epoch=concept.modelEpoch,
        )
        choices.append(choice)
    return choices


async def resolve_model(
    context: ServiceContext, tenant_id: str, model_id: str, field: str = "modelId"
) -> ResolvedModel:
    """The base model and adapters a request's `modelId` means: a base model's name, one of the caller's
    trained models, or one of the caller's composition models."""
    spec = context.base_models.get(model_id)
    if spec is not None:
        return ResolvedModel(spec=spec, adapters=[])
    model = await context.models.get_live(tenant_id, model_id)
    if model is None:
        raise ApiError(404, "model_not_found", f"model {model_id!r} does not exist", field=field)
    if model.type in COMPOSITION_TYPES:
        choices = await composition_adapters(context, tenant_id, model, field)
        resolved = combine(context, choices, field)
        if resolved.spec.name != model.baseModel:
            raise ApiError(
                422,
                "incompatible_base_models",
                f"composition {model_id!r} is on {model.baseModel!r} but its concepts on {resolved.spec.name!r}",
                field=field,
            )
        return resolved
    return combine(context, [await trained_model_adapter(context, tenant_id, model_id, field=field)], field)
