"""What every process does first: its logging and its tracer, from the settings."""

from __future__ import annotations

from infra.logs import configure_logging
from infra.settings import Settings
from infra.tracing import configure_tracing


def configure_process(settings: Settings, service: str) -> None:
    """Logging (JSON by default) and tracing (OTLP export when configured) for a process named `service`."""
    configure_logging(settings, service)
    configure_tracing(settings, service)


def service_for_handler(dotted_path: str) -> str:
    """The service name of a process that runs the Lambda handler at `dotted_path` (the local event sources):
    `functions.s3_events.handler.handler` -> `lorafoundry-s3-events`, as the function is named on AWS."""
    parts = dotted_path.split(".")
    function = parts[1] if len(parts) > 2 and parts[0] == "functions" else parts[0]
    return f"lorafoundry-{function.replace('_', '-')}"
