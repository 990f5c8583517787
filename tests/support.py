"""Helpers shared by tests: waiting on conditions with a deadline, AWS-shaped events, a lifecycle reader, and
small valid commands for the job records a test writes itself."""

from __future__ import annotations

import asyncio
import io
import time
import zipfile
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from events.generation import GenerationRequestedData
from events.training import TrainingParameters, TrainingRequestedData

T = TypeVar("T")
POLL_INTERVAL_S = 0.05


async def eventually(
    probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], timeout_s: float = 60.0, what: str = "condition"
) -> T:
    """Call `probe` until `done(result)`; fail with the last result after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await probe()
        if done(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last: {result!r}")
        await asyncio.sleep(POLL_INTERVAL_S)  # between probes; the deadline above bounds the wait


async def wait_for_job(
    client: httpx.AsyncClient, job_id: str, headers: dict[str, str], statuses: tuple[str, ...] = ("completed", "failed")
) -> dict[str, Any]:
    """Poll the seed 002 job endpoint until the job reaches one of `statuses`."""

    async def probe() -> dict[str, Any]:
        response = await client.get(f"/v1/images/jobs/{job_id}", headers=headers)
        assert response.status_code == 200, response.text
        return response.json()

    return await eventually(probe, lambda view: view["status"] in statuses, what=f"job {job_id} to finish")


def bearer(key: str) -> dict[str, str]:
    """The Authorization header for an API key."""
    return {"Authorization": f"Bearer {key}"}


async def read_topic(settings, topic: str, wanted: Callable[[Any], bool], count: int, timeout_s: float = 30) -> list:
    """Records of `topic` (read from the start by a fresh group) for which `wanted(record)`, once `count` are in."""
    import secrets

    from infra.kafka import create_consumer

    consumer = create_consumer(settings, topic, group_id=f"test-reader-{secrets.token_hex(4)}")
    await consumer.start()
    found: list = []
    try:

        async def probe() -> list:
            batch = await consumer.getmany(timeout_ms=200)
            found.extend(r for records in batch.values() for r in records if wanted(r))
            return found

        await eventually(probe, lambda f: len(f) >= count, timeout_s=timeout_s, what=f"{count} records on {topic}")
    finally:
        await consumer.stop()
    return found


def settings_env(settings: Any, **overrides: Any) -> dict[str, str]:
    """`settings` as the LF_* environment a subprocess reads them from (complex values as JSON)."""
    import json

    from pydantic import SecretStr

    env: dict[str, str] = {}
    for name, value in {**settings.model_dump(), **overrides}.items():
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[f"LF_{name.upper()}"] = json.dumps(value) if isinstance(value, dict | list) else str(value)
    return env


class FakeClock:
    """A clock of seconds (as `time.monotonic` gives them) that a test sets by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def generation_request(job_id: str, model_id: str = "tiny-sd", **fields: Any) -> GenerationRequestedData:
    """A small valid text-to-image command on the tiny base model (`fields` override its values)."""
    values: dict[str, Any] = {
        "jobId": job_id,
        "modelId": model_id,
        "baseModel": "tiny-sd",
        "prompt": "p",
        "width": 64,
        "height": 64,
        "guidanceScale": 7.5,
        "numOutputs": 1,
        "numInferenceSteps": 2,
        "seed": 1,
        **fields,
    }
    return GenerationRequestedData(**values)


def training_request(training_id: str, model_id: str = "mod_1") -> TrainingRequestedData:
    """A small valid training command of one image of `model_id`."""
    return TrainingRequestedData(
        trainingId=training_id,
        modelId=model_id,
        baseModel="tiny-sd",
        triggerWord="sks",
        dataKeys=[f"models/{model_id}/data/dat_1/{'0' * 64}.png"],
        parameters=TrainingParameters(
            learningRate=1e-4,
            learningRateTextEncoder=5e-5,
            maxTrainSteps=10,
            rank=4,
            batchSize=1,
            nbEpochs=1,
            nbRepeats=1,
            seed=1,
            resolution=64,
            conceptPrompt="sks",
        ),
    )


# --- Deploying the template into a local CloudFormation (moto's, LocalStack's) ---------------------------------


def placeholder_code_zip() -> bytes:
    """What the functions' code points at in a local deployment: creating a function needs an object, not the
    real package (tests/integration/test_lambda_package.py covers that); nothing is invoked."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("functions/__init__.py", "")
    return buffer.getvalue()


def wait_for_stack(cloudformation: Any, stack_name: str, deadline_s: float) -> dict:
    """The stack once no operation is in progress on it (moto's is synchronous; LocalStack's and AWS's not)."""
    from infra.local.processes import wait_until

    def describe() -> dict:
        return cloudformation.describe_stacks(StackName=stack_name)["Stacks"][0]

    wait_until(
        lambda: not describe()["StackStatus"].endswith("_IN_PROGRESS"),
        deadline_s,
        f"stack {stack_name}",
        interval_s=0.25,
    )
    return describe()


def stack_failures(cloudformation: Any, stack_name: str) -> str:
    """Every failed resource of a stack with its reason, for an assertion's message."""
    events = cloudformation.describe_stack_events(StackName=stack_name)["StackEvents"]
    return "\n".join(
        f"{e['LogicalResourceId']} ({e['ResourceType']}): {e.get('ResourceStatusReason')}"
        for e in events
        if e["ResourceStatus"].endswith("FAILED")
    )
