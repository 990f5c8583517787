"""`GET /v1/admin/status`: the operator's view of the deployment (`lorafoundry status`); the operator's token."""

from __future__ import annotations

from fastapi import APIRouter, Request

from functions.api.admin_auth import OperatorDep
from functions.api.dependencies import open_context
from functions.api.errors import ApiError
from functions.api.openapi import error_responses
from functions.api.schemas.admin_status import StatusOut
from functions.api.schemas.common import ERROR_RESPONSES
from functions.api.services.status import gather_status
from infra.aws import AwsClients

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses={**ERROR_RESPONSES, **error_responses(403)})


@router.get("/status", response_model=StatusOut)
async def status(request: Request, _: OperatorDep) -> StatusOut:
    """Components (with latency or error), consumer lag per group, jobs by kind and status, live workers. A
    component that is down is reported in the body (`ok: false`), not as an error status."""
    settings = request.app.state.settings
    try:
        context = await open_context(request.app.state)
    except ApiError:
        # The app's clients could not open (its producer needs Kafka): check with clients of this call's own.
        async with AwsClients(settings) as clients:
            return await gather_status(settings, clients.dynamodb, clients.s3)
    return await gather_status(context.settings, context.clients.dynamodb, context.clients.s3)
