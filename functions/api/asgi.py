"""ASGI entry point for uvicorn: `uvicorn functions.api.asgi:app`."""

from functions.api.app import create_app

app = create_app()
