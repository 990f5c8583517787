"""`GET /metrics`: the API's Prometheus text, behind the operator's token (on AWS the API is public). Left out of
the OpenAPI document: it is the operator's scrape endpoint, not part of the public API."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from functions.api.admin_auth import OperatorDep
from functions.api.dependencies import open_context
from functions.api.errors import ApiError
from functions.api.services.job_gauges import JobGauges
from infra.metrics_server import exposition

router = APIRouter()


def _gauges(request: Request) -> JobGauges:
    state = request.app.state
    gauges = getattr(state, "job_gauges", None)
    if gauges is None:
        gauges = state.job_gauges = JobGauges()
    return gauges


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, _: OperatorDep) -> Response:
    """Prometheus text exposition of every metric of this API (all its processes in multiprocess mode)."""
    gauges = _gauges(request)
    if gauges.due():
        try:
            context = await open_context(request.app.state)
        except ApiError:
            pass  # the backing services are down: the scrape still gets what this process recorded
        else:
            await gauges.refresh(context.clients.dynamodb, context.settings.jobs_table)
    body, content_type = exposition()
    return Response(content=body, media_type=content_type)
