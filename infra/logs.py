"""Logging for every process: one JSON object per line (LF_LOG_FORMAT=json, the default) or plain text, with the
job id, tenant and trace id on every line written while a job is being handled (`job_log_context`)."""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator

from infra.settings import Settings

_JOB_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("lf_job_id", default=None)
_TENANT: contextvars.ContextVar[str | None] = contextvars.ContextVar("lf_tenant", default=None)


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


def configure_logging(settings: Settings, service: str) -> None:
    """Configure the root logger of this process (its entry point calls it once)."""
    # Placeholder until the JSON formatter lands: the format every process used before.
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
