"""LocalStack as a child process on a free loopback port, without Docker: the lane's venv
(`bash infra/localstack/install.sh`) runs `python -m localstack.runtime.main` with the environment that keeps it
on loopback, offline and under a temporary directory. Ready when /_localstack/health shows the services up.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx

from infra.local.processes import ManagedProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".localstack-venv"
INSTALL_COMMAND = "bash infra/localstack/install.sh"
# What the integration suites use, and what the deploy test's stack creates or calls.
SERVICES = (
    "s3",
    "sqs",
    "dynamodb",
    "cloudformation",
    "lambda",
    "iam",
    "events",
    "sts",
    "logs",
    "secretsmanager",
    "ec2",
    "cloudwatch",
)
# Services load lazily: "available" is ready to serve its first request, "running" has served one.
UP = frozenset({"available", "running"})
READY_TIMEOUT_S = 60.0
# Its shutdown stops every service's thread: a few seconds on a loaded machine.
STOP_TIMEOUT_S = 20.0


class LocalStackNotInstalled(RuntimeError):
    """The lane's venv is missing or half-made."""


def localstack_python(venv: Path = VENV) -> Path:
    """The lane venv's interpreter; raises with the install command when the lane is not installed."""
    python = venv / "bin" / "python"
    if not (venv / ".installed").exists() or not python.exists():
        raise LocalStackNotInstalled(f"the LocalStack lane is not installed in {venv}: run `{INSTALL_COMMAND}`")
    return python


def localstack_env(port: int, state_dir: Path, services: Iterable[str] = SERVICES) -> dict[str, str]:
    """The environment of a LocalStack that serves only loopback and writes only under `state_dir`."""
    return {
        "GATEWAY_LISTEN": f"127.0.0.1:{port}",
        # The default server ignores the host of GATEWAY_LISTEN and binds 0.0.0.0.
        "GATEWAY_SERVER": "hypercorn",
        "LOCALSTACK_HOST": f"127.0.0.1:{port}",
        "SERVICES": ",".join(services),
        # Queue URLs as http://host:port/account/name: no per-queue host names to resolve.
        "SQS_ENDPOINT_STRATEGY": "path",
        # Else it starts a DNS server on 0.0.0.0:53.
        "DNS_ADDRESS": "0",
        # Else its state goes to /var/lib/localstack, as inside its container.
        "OVERRIDE_IN_DOCKER": "0",
        "FILESYSTEM_ROOT": str(state_dir),
        "DISABLE_EVENTS": "1",
        "SKIP_SSL_CERT_DOWNLOAD": "1",
        # Its own DynamoDB downloads a JDK and DynamoDB Local: infra/localstack/moto_dynamodb serves moto's.
        "PROVIDER_OVERRIDE_DYNAMODB": "moto",
        # Its Lambda executor needs Docker even to create a function: infra/localstack/no_lambda_runtime creates
        # them without one (and runs none).
        "LAMBDA_RUNTIME_EXECUTOR": "none",
    }


def services_up(endpoint: str, services: Iterable[str]) -> bool:
    """Whether LocalStack's health endpoint shows every one of `services` available or running."""
    try:
        health = httpx.get(f"{endpoint}/_localstack/health", timeout=1.0).json()["services"]
    except (httpx.HTTPError, ValueError, KeyError):
        return False
    return all(health.get(service) in UP for service in services)


@dataclass
class LocalStack:
    """A running LocalStack and how long it took to become ready."""

    process: ManagedProcess
    endpoint: str
    ready_s: float

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; returns its exit code."""
        return self.process.stop(STOP_TIMEOUT_S)


def start_localstack(
    log_path: Path, state_dir: Path, services: Iterable[str] = SERVICES, venv: Path = VENV
) -> LocalStack:
    """Start LocalStack on a free loopback port and return once its services are up."""
    python = localstack_python(venv)
    services = tuple(services)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    state_dir.mkdir(parents=True, exist_ok=True)
    # -I: the tests' PYTHONPATH and user site (Python 3.11's) must not leak into the 3.13 interpreter.
    argv = [str(python), "-I", "-m", "localstack.runtime.main"]
    process = ManagedProcess("localstack", argv, log_path, env=localstack_env(port, state_dir, services))
    started = time.monotonic()
    process.start()
    try:
        process.wait_ready(lambda: services_up(endpoint, services), READY_TIMEOUT_S)
    except BaseException:
        process.stop(STOP_TIMEOUT_S)
        raise
    return LocalStack(process, endpoint, time.monotonic() - started)
