"""`GET /v1/base-models`: the base models this deployment offers, so a client can pick a `baseModel`."""

from __future__ import annotations

from fastapi import APIRouter

from functions.api.dependencies import ContextDep, TenantDep
from functions.api.dialects.base_models import SCENARIO_CAPABILITIES
from functions.api.schemas.base_models import BaseModelList, BaseModelOut, SizeOut
from infra.base_models import CatalogEntry, base_model_catalog

router = APIRouter(prefix="/v1/base-models", tags=["base models"])


def _entry_out(entry: CatalogEntry) -> BaseModelOut:
    spec = entry.spec
    return BaseModelOut(
        name=spec.name,
        aliases=list(entry.aliases),
        family=spec.family,
        type=spec.model_type,
        default=entry.is_default,
        defaultSize=SizeOut(width=spec.default_size, height=spec.default_size),
        maxSize=SizeOut(width=spec.max_side, height=spec.max_side),
        sizeMultiple=spec.size_multiple,
        defaultSteps=spec.default_steps,
        defaultGuidanceScale=spec.default_guidance,
        capabilities=[c.value for c in spec.capabilities],
        scenarioCapabilities=[SCENARIO_CAPABILITIES[c] for c in spec.capabilities],
        modelTypes=[spec.model_type, f"{spec.family.value}-composition"],
    )


@router.get("", response_model=BaseModelList)
async def list_base_models(tenant: TenantDep, context: ContextDep) -> BaseModelList:
    """Every base model a model can be created on (`baseModel`) or generated with (`modelId`), by name: the
    built-in, the configured and those an operator registered at run time."""
    catalog = base_model_catalog(context.settings, context.registered_base_model_sources)
    return BaseModelList(data=[_entry_out(entry) for entry in catalog])
