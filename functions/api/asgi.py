"""ASGI entry point for uvicorn: `uvicorn functions.api.asgi:app`."""

from functions.api.app import create_app
from infra.observability import configure_process
from infra.settings import get_settings

configure_process(get_settings(), "lorafoundry-api")
app = create_app()
