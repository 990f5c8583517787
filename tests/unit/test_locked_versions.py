"""The environment holds the versions that requirements.lock holds for the model stack.

torch, diffusers, peft and transformers check each other's versions at run time (transformers 5.24 refuses
peft 0.21 when a text-encoder adapter is added): a drifted environment fails deep inside a training. This
names the drift up front instead.
"""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

import pytest

LOCK = Path(__file__).resolve().parents[2] / "requirements.lock"
MODEL_STACK = (
    "torch",
    "diffusers",
    "peft",
    "transformers",
    "accelerate",
    "huggingface-hub",
    "safetensors",
    "tokenizers",
)


def locked_versions(text: str) -> dict[str, str]:
    """`name==version` pins of a pip requirements lock, names normalised as PEP 503 does."""
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", text, flags=re.MULTILINE)
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins}


def test_the_lock_parser_reads_pins_and_ignores_hashes_and_comments() -> None:
    text = "# via x\nPeft==0.21.2 \\\n    --hash=sha256:ab\nhuggingface_hub==1.0.0\n    # via diffusers\n"
    assert locked_versions(text) == {"peft": "0.21.2", "huggingface-hub": "1.0.0"}


def test_the_lock_pins_the_whole_model_stack() -> None:
    pins = locked_versions(LOCK.read_text())
    missing = [name for name in MODEL_STACK if name not in pins]
    assert not missing, f"requirements.lock pins none of {missing}: run `make lock`"


def test_installed_model_stack_is_the_locked_combination() -> None:
    pins = locked_versions(LOCK.read_text())
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
