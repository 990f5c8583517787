"""Headshot routes: `GET /v1/styles?gender=`, `POST /v1/portraits`, `GET /v1/portraits/{id}`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response

from events.records.jobs import PortraitJob
from functions.api.dependencies import ContextDep, PortraitIdPath, TenantDep, TraceparentDep
from functions.api.dialects.headshot import render_portrait, styles_for
from functions.api.errors import ApiError
from functions.api.openapi import error_responses
from functions.api.schemas.common import ERROR_RESPONSES
from functions.api.schemas.portraits import CreatePortraitRequest, Gender, PortraitView, StyleList
from functions.api.services import portraits as service

router = APIRouter(prefix="/v1", tags=["portraits"], responses=ERROR_RESPONSES)


@router.get("/styles", response_model=StyleList)
async def list_styles(gender: Annotated[Gender, Query()], tenant: TenantDep) -> StyleList:
    """The styles a portrait of this gender can be generated in."""
    return StyleList(gender=gender, styles=styles_for(gender))


@router.post(
    "/portraits",
    status_code=202,
    response_model=PortraitView,
    response_model_exclude_none=True,
    responses=error_responses(404, 409, 413, 415),
)
async def create_portrait(
    body: Annotated[CreatePortraitRequest, Body()],
    tenant: TenantDep,
    context: ContextDep,
    response: Response,
    traceparent: TraceparentDep,
) -> PortraitView:
    """Train a LoRA of the person in the photos, then generate each chosen style: one job to poll."""
    parameters: dict[str, Any] | None = body.parameters.applied() if body.parameters else None
    portrait = await service.create_portrait(context, tenant, body, parameters, traceparent)
    response.headers["Location"] = f"/v1/portraits/{portrait.jobId}"
    return await render_portrait(context, portrait)


@router.get("/portraits/{portraitId}", response_model=PortraitView, response_model_exclude_none=True)
async def get_portrait(portraitId: PortraitIdPath, tenant: TenantDep, context: ContextDep) -> PortraitView:
    """Where a portrait stands: training progress, then each style's images."""
    portrait = await context.jobs.get_for_tenant(tenant, portraitId)
    # A deleted one is a portrait whose training could not be started: its caller was told, and got no id.
    if not isinstance(portrait, PortraitJob) or portrait.deletedAt:
        raise ApiError(404, "portrait_not_found", f"portrait {portraitId!r} does not exist", field="portraitId")
    return await render_portrait(context, portrait)
