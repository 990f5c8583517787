"""The environment holds the versions that requirements.lock holds for the model stack.

torch, diffusers, peft and transformers check each other's versions at run time (transformers 5.24 refuses
peft 0.21 when a text-encoder adapter is added): a drifted environment fails deep inside a training. This
names the drift up front instead.
"""

from __future__ import annotations

from importlib import metadata

import pytest

from infra.deploy.lambda_package import FORBIDDEN
from infra.deploy.lock import read_lock

# The model stack is what the Lambda package must never hold (less what only the local stack runs).
MODEL_STACK = sorted(FORBIDDEN - {"moto", "uvicorn"})


def test_the_lock_pins_the_whole_model_stack() -> None:
    pins = read_lock()
    missing = [name for name in MODEL_STACK if name not in pins]
    assert not missing, f"requirements.lock pins none of {missing}: run `make lock`"


def test_installed_model_stack_is_the_locked_combination() -> None:
    pins = {name: package.version for name, package in read_lock().items()}
    drifted = []
    for name in MODEL_STACK:
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "not installed"
        if installed != pins.get(name):
            drifted.append(f"{name} {installed} (lock: {pins.get(name)})")
    if drifted:
        pytest.fail(
            "This environment is not the locked one, so torch/diffusers/peft/transformers may not work together: "
            + "; ".join(drifted)
            + ". Reinstall with `rm -rf .venv && make setup`, or, to move to new versions, `make lock` and run the"
            " whole suite."
        )
