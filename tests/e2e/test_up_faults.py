"""`lorafoundry up` under faults: the generator worker and the trainer are SIGKILLed while they hold jobs (as
the OOM killer would); the supervisor restarts them, the jobs they held complete, and the API keeps serving.
The broker dying is fatal: `up` stops everything, says which component died and exits non-zero."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from infra.local.processes import wait_until
from tests.e2e.up_process import alive, descendants, launch_up
from tests.journeys import png

pytestmark = [pytest.mark.e2e, pytest.mark.serial]


def _component(root: int, needle: str) -> int | None:
    """The pid of the stack's process whose command line contains `needle`."""
    for pid in descendants(root):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if needle in cmdline and alive(pid):
            return pid
    return None


def test_killed_workers_are_restarted_their_jobs_complete_and_a_dead_broker_stops_the_stack(tmp_path: Path) -> None:
    # A killed worker's job is free again after 5 s, and the reconciler looks every second.
    process, info = launch_up(tmp_path, LF_WORKER_LEASE_SECONDS="5", LF_RECONCILE_INTERVAL_SECONDS="1")
    output = ""
    try:
        with httpx.Client(base_url=info.api_url, headers={"Authorization": f"Bearer {info.api_key}"}) as client:
            model_id = client.post("/v1/models", json={"name": "survives"}).json()["id"]
            uploaded = client.post(
                f"/v1/models/{model_id}/training-data",
                content=png((200, 60, 20)),
                headers={"Content-Type": "application/octet-stream"},
            )
            assert uploaded.status_code == 201, uploaded.text
            parameters = {"maxTrainSteps": 60, "nbEpochs": 2, "rank": 4, "samplePrompts": [], "seed": 3}
            training = client.post(f"/v1/models/{model_id}/trainings", json={"parameters": parameters})
            assert training.status_code == 202, training.text
            training_path = f"/v1/models/{model_id}/trainings/{training.json()['trainingId']}"
            # Big enough to be caught mid-job: 128 px, 40 steps.
            body = {"modelId": "tiny-sd", "prompt": "a fox", "width": 128, "height": 128, "numInferenceSteps": 40}
            generation = client.post("/v1/images/generate", json=body)
            assert generation.status_code == 202, generation.text
            job_path = f"/v1/images/jobs/{generation.json()['jobId']}"

            def status(path: str) -> str:
                return client.get(path, timeout=10).json()["status"]

            killed = {}
            for path, needle in ((job_path, "workers.generator"), (training_path, "workers.trainer")):
                wait_until(lambda p=path: status(p) == "processing", 120, f"{needle} to hold its job", 0.05)
                pid = _component(process.pid, needle)
                assert pid is not None, needle
                os.kill(pid, signal.SIGKILL)  # mid-job: no commit, no marker, the lease left to lapse
                killed[needle] = pid
            assert client.get("/healthz").status_code == 200  # the stack goes on serving

            wait_until(lambda: status(job_path) in ("completed", "failed"), 180, "the generation", 0.2)
            assert status(job_path) == "completed", client.get(job_path).json()
            wait_until(lambda: status(training_path) in ("succeeded", "failed"), 240, "the training", 0.2)
            assert status(training_path) == "succeeded", client.get(training_path).json()
            assert client.get("/healthz").status_code == 200
        for needle, old_pid in killed.items():
            new_pid = _component(process.pid, needle)
            assert new_pid is not None and new_pid != old_pid, f"{needle} was not restarted"

        # The broker holds every topic and offset in memory: without it nothing can go on.
        broker = _component(process.pid, "broker --listener-url")
        assert broker is not None
        children = descendants(process.pid)
        os.kill(broker, signal.SIGKILL)
        wait_until(lambda: process.poll() is not None, 60, "up to stop after the broker died")
        output = process.communicate(timeout=10)[0].decode()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            output = process.communicate()[0].decode()
    assert process.returncode == 1, output
    for needle in (
        "supervisor: worker-0 exited (killed by SIGKILL); restarting in",
        "supervisor: worker-0 restarted (pid",
        "supervisor: trainer exited (killed by SIGKILL); restarting in",
        "supervisor: trainer restarted (pid",
        "tansu died (killed by SIGKILL)",
        "Stopped; nothing left running.",
    ):
        assert needle in output, output
    survivors = [pid for pid in children if alive(pid)]
    assert not survivors, f"processes of the stack outlived it: {survivors}"
