"""Lambda entry point: the FastAPI app behind Mangum (API Gateway HTTP API, payload v2)."""

from __future__ import annotations

from mangum import Mangum

from functions.api.app import create_app
from infra.lambda_metrics import flushing
from infra.observability import configure_process
from infra.settings import get_settings

configure_process(get_settings(), "lorafoundry-api")
app = create_app()
# Lifespan off: clients open lazily and stay open for the warm container's life, not one invocation's. After each
# invocation the metrics it recorded are written as CloudWatch embedded metrics (in Lambda only).
handler = flushing(Mangum(app, lifespan="off"), "lorafoundry-api")
