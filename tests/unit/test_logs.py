"""The log lines every process writes: JSON with the job's and the trace's ids, or text with them."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider

from infra.logs import configure_logging, job_log_context, log_handler
from infra.settings import Settings

SECRET = "lf_sk_this-must-never-be-logged"


@pytest.fixture
def tracer():
    """A tracer of its own (not the process's global provider), so the test makes real span ids."""
    return TracerProvider().get_tracer("test")


def _logger(settings: Settings, stream: io.StringIO) -> Iterator[logging.Logger]:
    logger = logging.getLogger(f"lorafoundry.test.{id(stream)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = log_handler(settings, "lorafoundry-test", stream)
    logger.addHandler(handler)
    try:
        yield logger
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def json_lines() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    for logger in _logger(Settings(log_format="json"), stream):
        yield logger, stream


def _records(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_about_a_job_in_a_span_names_the_job_the_tenant_and_the_trace(json_lines, tracer) -> None:
    logger, stream = json_lines
    with tracer.start_as_current_span("work") as current, job_log_context("job_123", "tenant-a"):
        logger.info("generating %d images", 2)
    (line,) = _records(stream)
    context = current.get_span_context()
    assert line["message"] == "generating 2 images"
    assert line["level"] == "INFO"
    assert line["logger"] == logger.name
    assert line["service"] == "lorafoundry-test"
    assert line["time"].startswith("20") and ("+00:00" in line["time"] or line["time"].endswith("Z"))
    assert line["job_id"] == "job_123"
    assert line["tenant"] == "tenant-a"
    assert line["trace_id"] == format(context.trace_id, "032x")
    assert line["span_id"] == format(context.span_id, "016x")


def test_a_line_outside_any_job_or_span_has_none_of_the_ids(json_lines) -> None:
    logger, stream = json_lines
    with job_log_context("job_123", "tenant-a"):
        pass
    logger.warning("idle")
    (line,) = _records(stream)
    assert line["message"] == "idle"
    assert not {"job_id", "tenant", "trace_id", "span_id"} & line.keys()


def test_an_exception_stays_inside_its_json_line(json_lines) -> None:
    logger, stream = json_lines
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("failed")
    (line,) = _records(stream)
    assert line["message"] == "failed"
    assert "ValueError: boom" in line["exc_info"]


def test_text_mode_keeps_the_one_line_format_and_adds_the_ids(tracer) -> None:
    stream = io.StringIO()
    for logger in _logger(Settings(log_format="text"), stream):
        logger.info("outside")
        with tracer.start_as_current_span("work") as current, job_log_context("job_9", "tenant-b"):
            logger.info("inside")
    outside, inside = stream.getvalue().splitlines()
    assert outside.endswith(f"INFO {logger.name}: outside")
    trace_id = format(current.get_span_context().trace_id, "032x")
    assert f"INFO {logger.name}: inside [job_id=job_9 tenant=tenant-b trace_id={trace_id} span_id=" in inside


def test_the_ready_lines_the_local_stack_waits_for_are_found_in_json_logs(json_lines) -> None:
    from infra.local.stack import WORKER_READY_LINE

    logger, stream = json_lines
    logger.info("%s: group %s", WORKER_READY_LINE, "generators")
    assert WORKER_READY_LINE in stream.getvalue()  # what ManagedProcess.log_contains checks


def test_configure_logging_leaves_a_root_with_handlers_alone() -> None:
    root = logging.getLogger()
    assert root.handlers, "pytest's capture handlers are on the root logger"
    before = list(root.handlers)
    configure_logging(Settings(), "lorafoundry-test")
    configure_logging(Settings(), "lorafoundry-test")
    assert root.handlers == before


def test_settings_never_put_the_admin_token_in_a_line(json_lines) -> None:
    logger, stream = json_lines
    settings = Settings(admin_token=SECRET)
    logger.info("settings: %s", settings)
    logger.info("settings: %r", settings)
    assert SECRET not in stream.getvalue()


def test_in_lambda_the_runtimes_handler_gets_the_json_format(monkeypatch) -> None:
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "lorafoundry-s3-events")
    monkeypatch.setenv("LAMBDA_TASK_ROOT", "/var/task")
    stream = io.StringIO()
    runtime_handler = logging.StreamHandler(stream)  # what the Lambda runtime installs before our code runs
    root = logging.getLogger()
    level = root.level
    root.addHandler(runtime_handler)
    try:
        configure_logging(Settings(log_format="json"), "lorafoundry-s3-events")
        with job_log_context("job_7", "tenant-a"):
            logging.getLogger("lorafoundry.test.lambda").warning("marker applied")
    finally:
        root.removeHandler(runtime_handler)
        root.setLevel(level)
    (line,) = _records(stream)
    assert line["service"] == "lorafoundry-s3-events" and line["job_id"] == "job_7"
    assert not any(h.get_name() == "lorafoundry" for h in root.handlers)  # pytest's own were left alone
