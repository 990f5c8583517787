"""With PROMETHEUS_MULTIPROC_DIR set (the API's several uvicorn processes), a scrape of any one process reads what
every process recorded: counters are summed, the jobs gauge is the most recent value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

RECORD = """
from infra.metrics import HTTP_REQUESTS, JOBS_BY_STATUS
HTTP_REQUESTS.labels(route="/v1/x", method="GET", status="200").inc({n})
JOBS_BY_STATUS.labels(kind="generation", status="queued").set({n})
"""
SCRAPE = "import sys; from infra.metrics_server import exposition; sys.stdout.write(exposition()[0].decode())"


def run(code: str, folder: Path) -> str:
    env = {"PROMETHEUS_MULTIPROC_DIR": str(folder), "PATH": "/usr/bin:/bin"}
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout


def test_one_scrape_sees_every_process(tmp_path: Path) -> None:
    run(RECORD.format(n=2), tmp_path)
    run(RECORD.format(n=3), tmp_path)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(run(SCRAPE, tmp_path))
        for s in family.samples
    }
    requests = ("lorafoundry_http_requests_total", (("method", "GET"), ("route", "/v1/x"), ("status", "200")))
    assert samples[requests] == 5
    assert samples[("lorafoundry_jobs", (("kind", "generation"), ("status", "queued")))] == 3
