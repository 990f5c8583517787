"""`GET /v1/jobs`: the caller's jobs of every kind, newest first, cursor-paginated."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from functions.api.dependencies import ContextDep, TenantDep
from functions.api.openapi import error_responses
from functions.api.schemas.common import ERROR_RESPONSES
from functions.api.schemas.jobs import DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT, HistoryKind, JobHistory
from functions.api.services.jobs import job_history
from infra.repositories.jobs import MAX_CURSOR_CHARS

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=ERROR_RESPONSES)


@router.get("", response_model=JobHistory, response_model_exclude_none=True, responses=error_responses(400))
async def list_jobs(
    tenant: TenantDep,
    context: ContextDep,
    kind: Annotated[HistoryKind | None, Query(description="Only jobs of this kind.")] = None,
    status: Annotated[
        str | None, Query(max_length=32, description="Only jobs in this status (one of the kind's statuses).")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_HISTORY_LIMIT, description="Jobs per page.")] = DEFAULT_HISTORY_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=MAX_CURSOR_CHARS, description="The previous page's `nextCursor`.")
    ] = None,
) -> JobHistory:
    """The caller's generations, predictions, trainings and portraits, newest first (deleted ones left out);
    follow `nextCursor` for older ones."""
    return await job_history(context, tenant, limit=limit, kind=kind, status=status, cursor=cursor)
