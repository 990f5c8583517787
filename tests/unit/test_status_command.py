"""`lorafoundry status` prints a table per section and exits 1 when a component is down."""

from __future__ import annotations

import argparse

import httpx
import pytest

from infra import status_command
from infra.admin_client import AdminClient

DOWN = {
    "ok": False,
    "components": [
        {"name": "api", "ok": True, "latencyMs": 0.0, "detail": "answering this request"},
        {"name": "dynamodb", "ok": True, "latencyMs": 3.2, "detail": "table t"},
        {"name": "s3", "ok": True, "latencyMs": 2.1, "detail": "bucket b"},
        {"name": "kafka", "ok": False, "latencyMs": 10000.0, "detail": "no answer within 10 s"},
    ],
    "consumerLag": [],
    "lagError": "no answer within 10 s",
    "jobs": {"counts": [{"kind": "generation", "status": "queued", "count": 4}], "complete": True},
    "workers": [],
}


@pytest.fixture
def answering(monkeypatch):
    """Point the command at an API that answers `body` (through httpx's mock transport)."""

    def install(body: dict) -> list[httpx.Request]:
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return httpx.Response(200, json=body)

        monkeypatch.setattr(
            status_command, "AdminClient", lambda target: AdminClient(target, transport=httpx.MockTransport(handler))
        )
        monkeypatch.setenv("LF_ADMIN_TOKEN", "t0ken")
        return seen

    return install


def test_a_component_down_exits_1_and_is_named(answering, capsys) -> None:
    seen = answering(DOWN)
    assert status_command.cmd_status(argparse.Namespace(api="http://api.test", state_file="/none")) == 1
    out = capsys.readouterr().out
    assert seen[0].url.path == "/v1/admin/status"
    assert seen[0].headers["authorization"] == "Bearer t0ken"
    for text in ("Components", "kafka", "down", "not measured: no answer within 10 s", "generation", "queued"):
        assert text in out


def test_all_up_exits_0(answering, capsys) -> None:
    up = {**DOWN, "ok": True, "components": [{**c, "ok": True} for c in DOWN["components"]], "lagError": None}
    up["consumerLag"] = [{"group": "lorafoundry-generators", "topic": "lorafoundry.generation.requests", "lag": 7}]
    up["workers"] = [
        {
            "workerId": "host-1-abc",
            "kind": "generator",
            "group": "lorafoundry-generators",
            "host": "host",
            "pid": 1,
            "state": "busy",
            "jobId": "job_1",
            "metricsUrl": "http://host:9100/metrics",
            "startedAt": "2026-01-01T00:00:00Z",
            "heartbeatAt": "2026-01-01T00:00:00Z",
            "expiresAt": 1.0,
        }
    ]
    answering(up)
    assert status_command.cmd_status(argparse.Namespace(api="http://api.test", state_file="/none")) == 0
    out = capsys.readouterr().out
    for text in ("lorafoundry-generators", "7", "host-1-abc", "busy", "job_1", "http://host:9100/metrics"):
        assert text in out
    assert "down" not in out
