"""The Dockerfiles of infra/docker/, read as text (no Docker engine here: the images are not built by any test).

What can be checked without building: every COPY source exists and is in the build context, the torch pin is
the lock's (the Dockerfiles derive it; the derivation is run here against the real lock), the commands name
modules that exist, the CUDA base matches the PyTorch index torch comes from, and the GPU image agrees with
the ECS task definition (infra/deploy/workers.py) on the cache path, the heartbeat and the health check.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from infra.deploy import workers as ecs_workers
from infra.deploy.catalog import WORKER_SERVICES
from infra.deploy.lock import LOCK_PATH, read_lock

ROOT = LOCK_PATH.parent
DOCKER = ROOT / "infra" / "docker"
DOCKERFILES = sorted([DOCKER / "Dockerfile", *DOCKER.glob("*.Dockerfile")])
GPU = DOCKER / "worker-gpu.Dockerfile"
COMPOSE = ROOT / "localstack-compose.yml"


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined and comments dropped."""
    found, current = [], ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        keyword, _, rest = (current + line).partition(" ")
        found.append((keyword.upper(), rest.strip()))
        current = ""
    return found


def arguments(text: str) -> list[str]:
    """An instruction's arguments, JSON (exec) form or shell words."""
    return json.loads(text) if text.startswith("[") else shlex.split(text)


def build_args(path: Path) -> dict[str, str]:
    """Every `ARG NAME=default`."""
    return dict(rest.split("=", 1) for keyword, rest in instructions(path) if keyword == "ARG" and "=" in rest)


def environment(path: Path) -> dict[str, str]:
    """Every `ENV NAME=value`, later ones winning."""
    env: dict[str, str] = {}
    for keyword, rest in instructions(path):
        if keyword == "ENV":
            env.update(word.split("=", 1) for word in shlex.split(rest))
    return env


def runs(path: Path) -> str:
    """All RUN commands, one per line."""
    return "\n".join(rest for keyword, rest in instructions(path) if keyword == "RUN")


def module_exists(module: str) -> bool:
    """Whether `python -m module` finds it in the repository."""
    path = ROOT.joinpath(*module.split("."))
    return (path / "__main__.py").is_file() or path.with_suffix(".py").is_file()


def dockerignored(relative: str) -> bool:
    """Whether .dockerignore keeps `relative` (or a folder above it) out of the build context."""
    patterns = [
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    parts = Path(relative).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        # `**/name` matches a name at any depth; anything else is anchored at the root.
        candidates = parts if pattern.startswith("**/") else prefixes
        if any(fnmatch.fnmatch(candidate, pattern.removeprefix("**/")) for candidate in candidates):
            return True
    return False


def python_modules(command: list[str]) -> list[str]:
    """The module of a `python -m module ...` command."""
    return [command[i + 1] for i, word in enumerate(command[:-1]) if word == "-m" and "python" in command[i - 1]]


def test_the_dockerfiles_are_found() -> None:
    assert DOCKER / "Dockerfile" in DOCKERFILES
    assert GPU in DOCKERFILES


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_copy_source_exists_in_the_build_context(dockerfile: Path) -> None:
    copies = [arguments(rest) for keyword, rest in instructions(dockerfile) if keyword == "COPY"]
    sources = [src for words in copies if not any(w.startswith("--from") for w in words) for src in words[:-1]]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"{dockerfile.name}: COPY {source}: no such path from the repository root"
        assert not dockerignored(source), f"{dockerfile.name}: COPY {source}: .dockerignore leaves it out"


def test_the_build_context_leaves_out_local_state() -> None:
    for local in (".venv", ".git", "tests", "functions/api/__pycache__"):
        assert dockerignored(local), local
    assert not dockerignored("workers/generator/__main__.py")


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_the_torch_pin_is_derived_from_the_lock(dockerfile: Path) -> None:
    torch = read_lock()["torch"]
    text = dockerfile.read_text()
    assert torch.public_version not in text, f"{dockerfile.name} hard-codes torch {torch.public_version}"
    derivations = re.findall(r"\$\((sed -n '[^']*' requirements\.lock)\)", runs(dockerfile))
    assert len(derivations) == 1, f"{dockerfile.name}: expected one `$(sed ... requirements.lock)`"
    derived = subprocess.run(
        ["bash", "-c", derivations[0]], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert derived in {f"torch=={torch.version}", torch.public_version}, derived


def test_the_gpu_image_installs_the_rest_of_the_lock_without_torch() -> None:
    filters = re.findall(r"(awk '[^']*' requirements\.lock)", runs(GPU))
    assert len(filters) == 1
    filtered = subprocess.run(["bash", "-c", filters[0]], cwd=ROOT, capture_output=True, text=True, check=True)
    lock = read_lock()
    rest = read_lock(filtered.stdout)
    assert "torch" not in rest
    assert rest == {name: package for name, package in lock.items() if name != "torch"}


def test_the_cuda_base_matches_the_pytorch_index() -> None:
    args = build_args(GPU)
    base = re.fullmatch(r"nvidia/cuda:(\d+)\.(\d+)(?:\.\d+)?-[a-z-]+-ubuntu\d+\.\d+", args["CUDA_IMAGE"])
    index = re.fullmatch(r"cu(\d+)", args["TORCH_CUDA"])
    assert base and index, (args["CUDA_IMAGE"], args["TORCH_CUDA"])
    assert f"{base.group(1)}{base.group(2)}" == index.group(1)
    run = runs(GPU)
    # The ARG is what the install really uses: the index, the local version label, the post-install check.
    assert "https://download.pytorch.org/whl/${TORCH_CUDA}" in run
    assert "+${TORCH_CUDA}" in run
    assert "torch.version.cuda" in run
    assert ("FROM", "${CUDA_IMAGE}") in instructions(GPU)


def test_the_gpu_image_uses_the_locked_uv() -> None:
    assert build_args(GPU)["UV_VERSION"] == read_lock()["uv"].version


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_the_commands_name_modules_that_exist(dockerfile: Path) -> None:
    for keyword, rest in instructions(dockerfile):
        if keyword in {"CMD", "HEALTHCHECK"}:
            command = arguments(rest.split(" CMD ", 1)[1] if keyword == "HEALTHCHECK" else rest)
            for module in python_modules(command):
                assert module_exists(module), f"{dockerfile.name}: {keyword} runs {module}, which does not exist"


def test_the_gpu_image_runs_every_worker_service() -> None:
    cmd = arguments(next(rest for keyword, rest in instructions(GPU) if keyword == "CMD"))
    assert cmd == ["python", "-m", WORKER_SERVICES[0].module]
    for spec in WORKER_SERVICES:
        assert module_exists(spec.module), spec


def test_the_compose_commands_on_the_cpu_image_name_modules_that_exist() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    modules = [m for service in services.values() for m in python_modules(service.get("command") or [])]
    assert "workers.generator" in modules
    for module in modules:
        assert module_exists(module), module


def test_the_gpu_image_agrees_with_the_task_definition() -> None:
    """Non-root, SIGTERM, and the same cache path, heartbeat and health check as infra/deploy/workers.py."""
    steps = instructions(GPU)
    user = next(rest for keyword, rest in reversed(steps) if keyword == "USER")
    assert user.split(":")[0] not in {"root", "0"}
    assert ("STOPSIGNAL", "SIGTERM") in steps
    env = environment(GPU)
    assert env["LF_MODEL_CACHE_DIR"] == ecs_workers.MODEL_CACHE_CONTAINER_PATH
    assert env["LF_WORKER_HEARTBEAT_PATH"] == ecs_workers.HEARTBEAT_PATH
    volumes = [v for keyword, rest in steps if keyword == "VOLUME" for v in arguments(rest)]
    assert volumes == [ecs_workers.MODEL_CACHE_CONTAINER_PATH]
    health = next(rest for keyword, rest in steps if keyword == "HEALTHCHECK")
    assert arguments(health.split(" CMD ", 1)[1]) == ecs_workers.HEALTH_CHECK["Command"][1:]


def test_the_host_cache_is_given_to_the_images_user() -> None:
    """ECS bind-mounts the instance's cache folder: made by root at boot, the image's user could not write it."""
    assert str(ecs_workers.WORKER_UID) == build_args(GPU)["WORKER_UID"]
