"""Logging for every process: one JSON object per line (LF_LOG_FORMAT=json, the default) or plain text, with the
job id, tenant and trace id on every line written while a job is being handled (`job_log_context`) or inside a
span.

A JSON line has `time` (UTC, ISO 8601), `level`, `logger`, `message`, `service`, and `job_id`, `tenant`,
`trace_id`, `span_id` when they are known; `exc_info` when an exception is logged. Nothing here logs a request's
headers or bodies, so credentials reach a log only if a caller formats one into a message, which none does.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import sys
from collections.abc import Iterator
from typing import IO

from pythonjsonlogger.json import JsonFormatter

from infra.settings import Settings
from infra.tracing import current_span_id, current_trace_id

_JOB_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("lf_job_id", default=None)
_TENANT: contextvars.ContextVar[str | None] = contextvars.ContextVar("lf_tenant", default=None)

# The record attributes the context filter sets, in the order text lines show them.
CONTEXT_FIELDS = ("job_id", "tenant", "trace_id", "span_id")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries whose INFO lines are noise in every process.
_QUIET_LOGGERS = ("aiokafka", "botocore", "aiobotocore", "urllib3", "httpx")


@contextlib.contextmanager
def job_log_context(job_id: str | None, tenant: str | None = None) -> Iterator[None]:
    """Every log line written in the block (this task and what it starts) names the job and its tenant."""
    job_token = _JOB_ID.set(job_id)
    tenant_token = _TENANT.set(tenant)
    try:
        yield
    finally:
        _TENANT.reset(tenant_token)
        _JOB_ID.reset(job_token)


def current_job() -> tuple[str | None, str | None]:
    """The job id and tenant the current log context names."""
    return _JOB_ID.get(), _TENANT.get()


class ContextFilter(logging.Filter):
    """Puts the job id, tenant, trace id and span id of the current context on each record (only those known:
    a line about no job has none of them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        job_id, tenant = current_job()
        found = {"job_id": job_id, "tenant": tenant, "trace_id": current_trace_id(), "span_id": current_span_id()}
        for name, value in found.items():
            if value is not None and not hasattr(record, name):
                setattr(record, name, value)
        return True


class TextFormatter(logging.Formatter):
    """The one-line text format, followed by the context's ids (`job_id=… tenant=… trace_id=…`) when known."""

    def __init__(self, service: str) -> None:
        super().__init__(TEXT_FORMAT)
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = " ".join(f"{name}={getattr(record, name)}" for name in CONTEXT_FIELDS if hasattr(record, name))
        if not ids:
            return line
        first, newline, rest = line.partition("\n")  # a traceback stays below the line it belongs to
        return f"{first} [{ids}]{newline}{rest}"


def json_formatter(service: str) -> logging.Formatter:
    """One JSON object per record: time, level, logger, message, service, and whatever the context filter set."""
    return JsonFormatter(
        "%(levelname)s %(name)s %(message)s",
        rename_fields={"levelname": "level", "name": "logger"},
        static_fields={"service": service},
        timestamp="time",
    )


def log_handler(settings: Settings, service: str, stream: IO[str] | None = None) -> logging.Handler:
    """The handler a process logs through: to `stream` (stderr by default), in LF_LOG_FORMAT, with the context's
    ids on every record."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(TextFormatter(service) if settings.log_format == "text" else json_formatter(service))
    handler.addFilter(ContextFilter())
    handler.set_name(_HANDLER_NAME)
    return handler


_HANDLER_NAME = "lorafoundry"


def configure_logging(settings: Settings, service: str) -> None:
    """Configure the root logger of this process (its entry point calls it; calling it again changes nothing).

    A root logger that already has handlers is left alone (a test process with pytest's capture, a host that set
    up its own logging), as `logging.basicConfig` did; except in AWS Lambda, whose runtime installs its own
    handler first: that one gets our format and ids (the runtime sends what it writes to CloudWatch).
    """
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(log_handler(settings, service))
        root.setLevel(settings.log_level.upper())
    elif _in_lambda() and not any(h.get_name() == _HANDLER_NAME for h in root.handlers):
        for handler in root.handlers:
            if type(handler).__module__.startswith("_pytest"):
                continue  # a test that plays Lambda keeps pytest's capture as it is
            handler.setFormatter(log_handler(settings, service).formatter)
            handler.addFilter(ContextFilter())
            handler.set_name(_HANDLER_NAME)
        root.setLevel(settings.log_level.upper())


def _in_lambda() -> bool:
    # Both are set by the Lambda runtime itself; a test that sets the function name alone is not Lambda.
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME") and os.environ.get("LAMBDA_TASK_ROOT"))
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
