"""`lorafoundry up` as a subprocess, as a user starts it, and the processes it runs (read from /proc)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

from infra.local.processes import wait_until
from infra.local.stack import StackInfo

ROOT = Path(__file__).resolve().parents[2]
# In the LocalStack lane (LF_TEST_AWS=localstack) the session's LocalStack, set by tests/e2e/conftest.py: `up` then
# uses it (`--aws external`) instead of starting moto.
external_aws_endpoint: str | None = None


def external_aws() -> tuple[list[str], dict[str, str]]:
    """`up`'s arguments and environment for the external AWS endpoint, if the session has one: resources of a
    prefix of their own on it, since the endpoint outlives each stack."""
    if external_aws_endpoint is None:
        return [], {}
    credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    return ["--aws", "external"], {
        "LF_AWS_ENDPOINT_URL": external_aws_endpoint,
        "LF_RESOURCE_PREFIX": f"e2e-{secrets.token_hex(3)}",
        **credentials,
        **{f"LF_{name}": value for name, value in credentials.items()},
    }


def launch_up(tmp_path: Path, **env: str) -> tuple[subprocess.Popen[bytes], StackInfo]:
    """Start `lorafoundry up` (its own session, output piped) with `env` over the environment, and return once
    its state file says where it listens. The caller stops it."""
    state_file = tmp_path / "stack.json"
    argv = [sys.executable, "-m", "infra.local.cli", "up", "--state-file", str(state_file)]
    argv += ["--log-dir", str(tmp_path / "logs")]
    aws_argv, aws_env = external_aws()
    argv += aws_argv
    environment = {**os.environ, "LF_MODEL_CACHE_DIR": str(ROOT / ".pytest_cache" / "models"), **aws_env, **env}
    process = subprocess.Popen(
        argv, cwd=ROOT, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        wait_until(lambda: state_file.exists() or process.poll() is not None, 240, "the stack's state file")
        assert process.poll() is None, process.stdout.read().decode() if process.stdout else ""
        info = StackInfo.load(state_file)
        assert info is not None
    except BaseException:
        process.kill()
        process.communicate()
        raise
    return process, info


def descendants(root: int) -> set[int]:
    """Every process below `root`, read from /proc (children run in sessions of their own)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
