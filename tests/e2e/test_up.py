"""`lorafoundry up` as a user runs it: a subprocess driven over HTTP, stopped with Ctrl-C (SIGINT)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from standardwebhooks import Webhook

from infra.local.processes import port_open, wait_until
from infra.local.stack import StackInfo
from tests.e2e import up_process
from tests.e2e.up_process import alive, descendants, launch_up
from tests.http_server import LoopbackServer, loopback_server
from tests.journeys import QUICK, png

pytestmark = [pytest.mark.e2e, pytest.mark.serial]


def _ports(info: StackInfo) -> list[int]:
    ports = [urlparse(info.api_url).port, int(info.kafka_bootstrap_servers.rsplit(":", 1)[1])]
    if info.aws_endpoint_url and up_process.external_aws_endpoint is None:  # an external endpoint outlives the stack
        ports.append(urlparse(info.aws_endpoint_url).port)
    return [p for p in ports if p]


@pytest.fixture
def hooks() -> Iterator[LoopbackServer]:
    """A webhook receiver on loopback."""
    with loopback_server() as server:
        server.routes["/hook"] = (200, {}, b"ok")
        yield server


def test_up_serves_a_job_and_stops_cleanly(tmp_path: Path, hooks: LoopbackServer) -> None:
    state_file = tmp_path / "stack.json"
    # The operator allows loopback for outgoing calls: the test's webhook receiver listens there.
    process, info = launch_up(tmp_path, LF_EGRESS_ALLOWED_NETWORKS='["127.0.0.0/8"]')
    output = ""
    try:
        headers = {"Authorization": f"Bearer {info.api_key}"}
        with httpx.Client(base_url=info.api_url, headers=headers, timeout=30) as client:
            response = client.post(
                "/v1/images/generate",
                json={
                    "modelId": "tiny-sd",
                    "prompt": "a red fox",
                    "numOutputs": 1,
                    "seed": 5,
                    "webhook": f"{hooks.base_url}/hook",
                },
            )
            assert response.status_code == 202, response.text
            job_id = response.json()["jobId"]
            view: dict = {}

            def finished() -> bool:
                view.update(client.get(f"/v1/images/jobs/{job_id}").json())
                return view["status"] in ("completed", "failed")

            wait_until(finished, 120, f"job {job_id}", interval_s=0.1)
            assert view["status"] == "completed", json.dumps(view)
            image = httpx.get(view["images"][0]["url"], timeout=30)
            assert image.content.startswith(b"\x89PNG")
            assert client.get("/v1/images/jobs/job_missing").status_code == 404
            # The webhooks function (lifecycle topic) called the job's webhook, signed with the tenant's secret.
            wait_until(lambda: len(hooks.posts) >= 1, 60, "the webhook delivery", interval_s=0.1)
            secret = client.get("/v1/webhooks/secret").json()["secret"]
            delivered = Webhook(secret).verify(hooks.posts[0].body, hooks.posts[0].headers)
            assert delivered["type"] == "job.completed" and delivered["data"]["jobId"] == job_id

            # The whole seed 004 journey through the running stack: upload, train, then the portraits
            # function (lifecycle topic) queues the style's generation with the trained adapter.
            key = client.post("/v1/uploads", content=png((180, 130, 100)), headers={"Content-Type": "image/png"})
            assert key.status_code == 201, key.text
            portrait = client.post(
                "/v1/portraits",
                json={
                    "gender": "woman",
                    "styles": ["studio"],
                    "customizations": "red hair",
                    "imageKeys": [key.json()["key"]],
                    "parameters": QUICK,
                },
            )
            assert portrait.status_code == 202, portrait.text
            portrait_view: dict = {}

            def portrait_done() -> bool:
                portrait_view.update(client.get(f"/v1/portraits/{portrait.json()['portraitId']}").json())
                return portrait_view["status"] in ("completed", "failed")

            wait_until(portrait_done, 240, "the portrait", interval_s=0.25)
            assert portrait_view["status"] == "completed", json.dumps(portrait_view)
            assert len(portrait_view["styles"][0]["images"]) == 1
        ports = _ports(info)
        assert all(port_open(p) for p in ports)
        children = descendants(process.pid)
        # moto (unless external), tansu, api, poller, portraits, webhooks, webhooks-sweep, reconciler, worker, trainer
        assert len(children) >= (9 if up_process.external_aws_endpoint else 10), children
    finally:
        process.send_signal(signal.SIGINT)
        try:
            output = process.communicate(timeout=60)[0].decode()
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output = process.communicate()[0].decode()
            pytest.fail(f"lorafoundry up did not stop on SIGINT:\n{output}")
    assert process.returncode == 0, output
    for needle in ("LoRA Foundry is up", "Dev API key", "/docs", "Stopped; nothing left running."):
        assert needle in output, output
    assert all(not port_open(p) for p in ports), "a component still listens after shutdown"
    survivors = [pid for pid in children if alive(pid)]
    assert not survivors, f"processes of the stack outlived it: {survivors}"
    assert not state_file.exists()
