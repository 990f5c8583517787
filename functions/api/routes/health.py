"""Liveness and readiness probes."""

from __future__ import annotations

from fastapi import APIRouter

from functions.api.dependencies import ContextDep
from functions.api.openapi import error_responses

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz", responses=error_responses(503))
async def readyz(context: ContextDep) -> dict[str, str]:
    """The process can reach its table and bucket."""
    await context.clients.dynamodb.describe_table(TableName=context.settings.jobs_table)
    await context.clients.s3.head_bucket(Bucket=context.settings.bucket)
    return {"status": "ready"}
