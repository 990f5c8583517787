"""The FastAPI application: routes, error shapes, body limits, OpenAPI at /docs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from functions.api.body_limit import BodySizeLimit
from functions.api.dependencies import new_context_lock, open_context
from functions.api.errors import install_error_handlers
from functions.api.idempotency import IdempotencyMiddleware
from functions.api.openapi import install_openapi
from functions.api.request_metrics import RequestMetrics
from functions.api.request_tracing import RequestTracing
from functions.api.routes import (
    adapter_downloads,
    adapter_imports,
    admin,
    admin_status,
    base_models,
    health,
    images,
    jobs,
    metrics,
    models,
    portraits,
    predictions,
    training_data,
    trainings,
    uploads,
    webhooks,
)
from infra.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; clients open lazily on the first request and close on shutdown."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if app.state.context is not None:
            await app.state.context.close()
            app.state.context = None

    app = FastAPI(
        title="LoRA Foundry",
        version="0.1.0",
        description="Train LoRA adapters on diffusion base models and generate images with them.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.context = None
    app.state.context_lock = new_context_lock()
    install_error_handlers(app)
    # Inside the body limit (added later = outer), so an oversized body is refused before it is buffered.
    app.add_middleware(IdempotencyMiddleware, open_context=lambda scope: open_context(scope["app"].state))
    app.add_middleware(
        BodySizeLimit,
        max_bytes=settings.max_request_bytes,
        overrides=(
            # One raw image per request; a little slack over the image limit so its own check names it.
            (r"/v1/models/[^/]+/training-data(/[^/]+)?", settings.max_image_bytes + 1024),
            (r"/v1/models/[^/]+/train", settings.max_training_upload_bytes),
            # One LoRA file as the raw body; a little slack so the route's own check names the presigned way.
            (r"/v1/models/[^/]+/adapter", settings.max_adapter_bytes + 1024),
            # One image, raw or as a multipart form (whose framing needs a little room).
            (r"/v1/uploads", settings.max_image_bytes + 64 * 1024),
            # An image and its mask.
            (r"/v1/images/modify", 2 * settings.max_image_bytes + 64 * 1024),
        ),
    )
    # Outermost (added last): every request is timed and traced, refusals by the inner layers included; the
    # trace is outside the timing so that the metrics' exemplars can name it.
    app.add_middleware(RequestMetrics)
    app.add_middleware(RequestTracing)
    for router in (
        health.router,
        base_models.router,
        images.router,
        models.router,
        adapter_downloads.router,
        training_data.router,
        trainings.router,
        adapter_imports.router,
        uploads.router,
        portraits.router,
        predictions.router,
        webhooks.router,
        jobs.router,
        admin.router,
        admin_status.router,
        metrics.router,
    ):
        app.include_router(router)
    install_openapi(app)
    return app
