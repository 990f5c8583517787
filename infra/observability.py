"""What every process does first: its logging and its tracer, from the settings."""

from __future__ import annotations

from infra.logs import configure_logging
from infra.settings import Settings
from infra.tracing import configure_tracing


def configure_process(settings: Settings, service: str) -> None:
    """Logging (JSON by default) and tracing (OTLP export when configured) for a process named `service`."""
    configure_logging(settings, service)
    configure_tracing(settings, service)
