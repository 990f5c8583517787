"""Models: create, update, rename, delete, and the checks those commands make. No FastAPI here; the views
that render a model are in functions/api/dialects."""

from __future__ import annotations

import secrets
from typing import Any, cast

from events.records.jobs import TrainingJob
from events.records.models import ConceptRef, ModelRecord
from events.states import ModelStatus
from events.usecases.quotas import release_storage
from events.usecases.training_params import ParameterError, check_family_parameters
from events.usecases.trainings import base_model_of
from functions.api.errors import ApiError
from functions.api.schemas.models import (
    COMPOSITION_TYPES,
    SUPPORTED_TYPES,
    TRAINABLE_TYPES,
    TYPE_FAMILIES,
    Concept,
    CreateModelRequest,
    RenameModelRequest,
    UpdateModelRequest,
)
from functions.api.services.training_data import counted_bytes
from infra.base_models import BaseModelSpec
from infra.runtime import ServiceContext

DEFAULT_NAME = "Untitled model"


def new_model_id() -> str:
    """A fresh, unguessable model id (the Realm-style API's `mod_…`)."""
    return f"mod_{secrets.token_hex(10)}"


def resolve_base_model(context: ServiceContext, name: str | None) -> BaseModelSpec:
    """The base model a create request names (or the default); 422 naming the choices otherwise."""
    return cast(BaseModelSpec, base_model_of(context, name))


def supported_types(context: ServiceContext) -> list[str]:
    """The Scenario-style types this deployment accepts: those of the families it has a base model of."""
    families = {spec.family for spec in context.base_models.values()}
    return [t for t in SUPPORTED_TYPES if TYPE_FAMILIES[t] in families]


def check_model_type(context: ServiceContext, model_type: str, spec: BaseModelSpec) -> str:
    """A Scenario-style type this service supports on `spec`'s family; 422 with the reason otherwise."""
    supported = supported_types(context)
    if model_type not in supported:
        raise ApiError(
            422,
            "unsupported_model_type",
            f"model type {model_type!r} is not supported: LoRA Foundry trains and composes LoRA image models "
            f"of the base models it has ({', '.join(supported)})",
            field="type",
            extra={"supportedTypes": supported},
        )
    if TYPE_FAMILIES[model_type] is not spec.family:
        raise ApiError(
            422,
            "incompatible_model_type",
            f"model type {model_type!r} is for {TYPE_FAMILIES[model_type].value} base models; base model "
            f"{spec.name!r} is {spec.family.value} (its types: {spec.model_type}, {spec.family.value}-composition)",
            field="type",
        )
    return model_type


def family_checked(parameters: dict[str, Any], spec: BaseModelSpec) -> dict[str, Any]:
    """Canonical parameters within the limits of `spec`'s family (FLUX's ranks, steps); 422 naming the field."""
    try:
        check_family_parameters(parameters, spec.family.value)
    except ParameterError as exc:
        field = f"parameters.{exc.field}" if exc.field else "parameters"
        raise ApiError(422, "validation_error", str(exc), field=field) from exc
    return parameters


async def require_model(context: ServiceContext, tenant_id: str, model_id: str) -> ModelRecord:
    """The caller's live model, or 404 (another tenant's or a deleted model looks the same as none)."""
    model = await context.models.get_live(tenant_id, model_id)
    if model is None:
        raise ApiError(404, "model_not_found", f"model {model_id!r} does not exist", field="modelId")
    return model


async def _check_concepts(
    context: ServiceContext, tenant_id: str, concepts: list[Concept], spec: BaseModelSpec
) -> None:
    for index, concept in enumerate(concepts):
        other = await context.models.get_live(tenant_id, concept.modelId)
        field = f"concepts.{index}.modelId"
        if other is None:
            raise ApiError(422, "model_not_found", f"concept model {concept.modelId!r} does not exist", field=field)
        if other.type not in TRAINABLE_TYPES or TYPE_FAMILIES[other.type] is not spec.family:
            raise ApiError(
                422,
                "incompatible_concept",
                f"concept model {concept.modelId!r} ({other.type}) is not a LoRA of the composition's base-model "
                f"family ({spec.family.value}-lora)",
                field=field,
            )
        if concept.modelEpoch is not None:
            await check_epoch(context, other, concept.modelEpoch, field=f"concepts.{index}.modelEpoch")
    if len({c.modelId for c in concepts}) != len(concepts):
        raise ApiError(422, "duplicate_concept", "a model is listed twice in concepts; list it once", field="concepts")


def _concept_refs(concepts: list[Concept]) -> list[ConceptRef]:
    return [ConceptRef(**c.model_dump(exclude_none=True)) for c in concepts]


async def create_model(context: ServiceContext, tenant_id: str, body: CreateModelRequest) -> ModelRecord:
    """Record a new model (status `new`)."""
    spec = resolve_base_model(context, body.baseModel)
    model_type = check_model_type(context, body.type or spec.model_type, spec)
    if model_type in COMPOSITION_TYPES and body.concepts:
        await _check_concepts(context, tenant_id, body.concepts, spec)
    record = ModelRecord(
        modelId=new_model_id(),
        tenantId=tenant_id,
        name=body.resolved_name or DEFAULT_NAME,
        description=body.resolved_description,
        baseModel=spec.name,
        type=model_type,
        customModelType=body.customModelType,
        tags=body.tags or [],
        parameters=family_checked(body.parameters.applied(), spec) if body.parameters else {},
        concepts=_concept_refs(body.concepts) if body.concepts else None,
    )
    return await context.models.create(record)


def _naming_fields(body: RenameModelRequest | UpdateModelRequest) -> dict[str, Any]:
    """The name, description and tags a rename or an update sets (what the body sends, in any spelling)."""
    fields: dict[str, Any] = {}
    if body.resolved_name:
        fields["name"] = body.resolved_name
    if body.resolved_description is not None:
        fields["description"] = body.resolved_description
    if body.tags is not None:
        fields["tags"] = body.tags
    return fields


async def rename_model(
    context: ServiceContext, tenant_id: str, model: ModelRecord, body: RenameModelRequest
) -> ModelRecord:
    """The custom-models API's rename (and name/description/tags)."""
    fields = _naming_fields(body)
    if not fields:
        return model
    return await context.models.update_fields(model.modelId, fields, expected_version=model.version)


async def update_model(
    context: ServiceContext, tenant_id: str, model: ModelRecord, body: UpdateModelRequest
) -> ModelRecord:
    """The Scenario-style API's update: fields present in the body change; `type` only while the model is `new`."""
    spec = resolve_base_model(context, model.baseModel)
    sent = body.model_fields_set
    fields = _naming_fields(body)
    unset: list[str] = []
    if "type" in sent and body.type is not None and body.type != model.type:
        if model.status is not ModelStatus.NEW:
            raise ApiError(
                409,
                "model_type_locked",
                f"the type can only be changed while the model is 'new'; this model is {model.status.value!r}",
                field="type",
            )
        fields["type"] = check_model_type(context, body.type, spec)
    if body.parameters is not None:
        if model.status is ModelStatus.TRAINING:
            raise ApiError(
                409, "model_training", "parameters cannot change while the model is training", field="parameters"
            )
        # Canonical only: aliases folded in, ignored fields (the wandbKey secret among them) dropped.
        fields["parameters"] = family_checked(body.parameters.applied(), spec)
    if "concepts" in sent:
        if body.concepts:
            await _check_concepts(context, tenant_id, body.concepts, spec)
            fields["concepts"] = _concept_refs(body.concepts)
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
    return await context.models.update_fields(model.modelId, fields, expected_version=model.version, remove=unset)


async def check_epoch(context: ServiceContext, model: ModelRecord, epoch: str, field: str = "epoch") -> None:
    """409 unless the model is trained, 422 unless its adapter's training has that epoch."""
    if model.status is not ModelStatus.TRAINED:
        raise ApiError(
            409,
            "model_not_trained",
            f"model {model.modelId!r}: an epoch can only be chosen once it is trained",
            field=field,
        )
    training = await context.jobs.get_as(model.adapterTrainingId, TrainingJob) if model.adapterTrainingId else None
    epochs = training.epochs if training is not None else {}
    if epoch not in epochs:
        known = ", ".join(sorted(epochs)) or "none"
        raise ApiError(
            422,
            "unknown_epoch",
            f"epoch {epoch!r} of model {model.modelId!r} does not exist; it has: {known}",
            field=field,
        )


async def soft_delete_model(context: ServiceContext, model: ModelRecord) -> None:
    """Hide a model from its owner for good; the record and its trainings stay for history. Its training images
    stop counting against the tenant's storage: the tenant can no longer see or delete them."""
    if await context.models.soft_delete(model.modelId):
        items = await context.training_data.list(model.modelId)
        # The imported adapter's stored file is counted too (kept, as the trainings' adapters are).
        imported = model.importedAdapter.storedBytes if model.importedAdapter else 0
        await release_storage(context, model.tenantId, sum(counted_bytes(item) for item in items) + imported)
