"""The import graph of the layers, read from the source with `ast` (nothing is imported).

    entry points (functions/, workers/)  ->  use cases (events/usecases/)  ->  kernel (the rest of events/)
    entry points                         ->  adapters (infra/)             ->  kernel

- the kernel (contracts, state machines, storage keys, records, repository outcomes) imports only itself;
- the use cases import only the kernel: they take their repositories, store and publisher as arguments typed
  by the Protocols of `events/usecases/ports.py`, which the adapters satisfy structurally, so a use case runs
  against in-memory fakes as it runs against DynamoDB;
- `infra` (adapters) imports only the kernel: neither the use cases nor an entry point (the embedded stack
  names the handlers and modules as strings and starts them as processes, as a Lambda runtime or a container
  would);
- `functions` does not import `workers`, and `workers` does not import `functions`;
- the kernel and the use cases import no I/O library (AWS, Kafka, HTTP, images): all I/O is an adapter's;
- only `workers/` imports torch, diffusers, peft or transformers: the API and the other functions must load
  without them (a Lambda package carries none of them).

Every import counts wherever it is: module level, inside a function (a lazy import), under
`if TYPE_CHECKING:`, relative (`from ..workers import x`), and `importlib.import_module("...")` or
`__import__("...")` with a literal name.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Layers are named by the module prefix that holds them; the longest prefix wins (use cases live in events/).
LAYERS = ("kernel", "usecases", "adapters", "functions", "workers")
LAYER_PREFIXES = {
    "events.usecases": "usecases",
    "events": "kernel",
    "infra": "adapters",
    "functions": "functions",
    "workers": "workers",
}
SOURCE_PACKAGES = ("events", "infra", "functions", "workers")

# For each layer, the layers it must not import.
FORBIDDEN_LAYERS: dict[str, frozenset[str]] = {
    "kernel": frozenset({"usecases", "adapters", "functions", "workers"}),
    "usecases": frozenset({"adapters", "functions", "workers"}),
    "adapters": frozenset({"usecases", "functions", "workers"}),
    "functions": frozenset({"workers"}),
    "workers": frozenset({"functions"}),
}
# Libraries that do I/O (or decode images): the kernel and the use cases reach them only through ports.
IO_LIBRARIES = frozenset(
    {
        "aiobotocore",
        "botocore",
        "boto3",
        "aiokafka",
        "confluent_kafka",
        "httpx",
        "requests",
        "urllib3",
        "fastapi",
        "starlette",
        "mangum",
        "PIL",
        "socket",
        "subprocess",
    }
)
PURE_LAYERS = frozenset({"kernel", "usecases"})
# The model stack: importable from `workers/` only.
MODEL_LIBRARIES = frozenset({"torch", "diffusers", "peft", "transformers"})
MODEL_LAYER = "workers"


@dataclass(frozen=True)
class Import:
    """One imported module name, where it is imported."""

    path: str  # relative to the repository root, e.g. "functions/api/app.py"
    line: int
    module: str  # absolute dotted name, relative imports resolved

    @property
    def top(self) -> str:
        return self.module.split(".")[0]

    @property
    def layer(self) -> str | None:
        """The first-party layer the imported module belongs to, or None for a third-party one."""
        return layer_of_module(self.module)


@dataclass(frozen=True)
class Violation:
    """An import a rule forbids."""

    imported: Import
    rule: str

    def __str__(self) -> str:
        return f"{self.imported.path}:{self.imported.line}: imports {self.imported.module!r} ({self.rule})"


def layer_of_module(module: str) -> str | None:
    """The layer of a dotted module name, by its longest matching prefix."""
    for prefix in sorted(LAYER_PREFIXES, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return LAYER_PREFIXES[prefix]
    return None


def layer_of_path(path: str) -> str | None:
    """The layer of a source file, e.g. "events/usecases/jobs.py" -> "usecases"."""
    return layer_of_module(".".join(Path(path).with_suffix("").parts))


def _package_of(path: str) -> list[str]:
    """The dotted package a module at `path` belongs to (for resolving relative imports)."""
    parts = list(Path(path).with_suffix("").parts)
    return parts[:-1]  # a module's package; for `__init__.py` the package itself (its last part is "__init__")


def _resolve(path: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = _package_of(path)
    base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
    return ".".join([*base, *([node.module] if node.module else [])])


def _literal_dynamic_import(node: ast.Call) -> str | None:
    """`importlib.import_module("x")`, `import_module("x")` or `__import__("x")` with a literal name."""
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name not in {"import_module", "__import__"} or not node.args:
        return None
    first = node.args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str) and not first.value.startswith("."):
        return first.value
    return None


def imports_of(source: str, path: str) -> Iterator[Import]:
    """Every module `source` (the text of the file at `path`) imports, anywhere in it."""
    tree = ast.parse(source, filename=path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            # `from . import x` yields the package: only its top-level name matters here.
            yield Import(path, node.lineno, _resolve(path, node))
        elif isinstance(node, ast.Call) and (module := _literal_dynamic_import(node)):
            yield Import(path, node.lineno, module)


def violations_of(source: str, path: str) -> list[Violation]:
    """What in `source` breaks the layering rules, for a file at `path` (relative to the root)."""
    layer = layer_of_path(path)
    forbidden = FORBIDDEN_LAYERS.get(layer or "", frozenset())
    found = []
    for imported in imports_of(source, path):
        if imported.layer in forbidden:
            found.append(Violation(imported, f"{layer} must not import {imported.layer}"))
        elif imported.top in MODEL_LIBRARIES and layer != MODEL_LAYER:
            found.append(Violation(imported, f"only {MODEL_LAYER}/ may import {imported.top}"))
        elif imported.top in IO_LIBRARIES and layer in PURE_LAYERS:
            found.append(Violation(imported, f"{layer} does no I/O: {imported.top} is an adapter's"))
    return found


def source_files() -> list[Path]:
    return sorted(p for package in SOURCE_PACKAGES for p in (ROOT / package).rglob("*.py") if ".venv" not in p.parts)


def all_violations() -> list[Violation]:
    found = []
    for file in source_files():
        found.extend(violations_of(file.read_text(encoding="utf-8"), file.relative_to(ROOT).as_posix()))
    return found


def _report(found: list[Violation]) -> str:
    return "forbidden imports:\n" + "\n".join(f"  {v}" for v in found)


def test_every_layer_has_sources() -> None:
    files = source_files()
    for layer in LAYERS:
        assert any(layer_of_path(f.relative_to(ROOT).as_posix()) == layer for f in files), f"no sources in {layer}"


@pytest.mark.parametrize("layer", LAYERS)
def test_layer_imports_point_one_way(layer: str) -> None:
    found = [v for v in all_violations() if layer_of_path(v.imported.path) == layer and "must not import" in v.rule]
    assert not found, _report(found)


def test_only_workers_import_the_model_libraries() -> None:
    found = [v for v in all_violations() if v.imported.top in MODEL_LIBRARIES]
    assert not found, _report(found)


def test_workers_do_import_the_model_libraries() -> None:
    """The rule above is not vacuous: the workers are where torch and diffusers are imported."""
    tops = {
        i.top
        for f in source_files()
        if layer_of_path(f.relative_to(ROOT).as_posix()) == MODEL_LAYER
        for i in imports_of(f.read_text(encoding="utf-8"), f.relative_to(ROOT).as_posix())
    }
    assert {"torch", "diffusers"} <= tops


SYNTHETIC = '''\
"""A module that breaks every rule."""
from __future__ import annotations
import os
from typing import TYPE_CHECKING

from functions.api.app import create_app
import workers.consumer

if TYPE_CHECKING:
    from transformers import CLIPTextModel


def lazy():
    import torch.nn as nn
    from diffusers import StableDiffusionPipeline
    return nn, StableDiffusionPipeline


def dynamic():
    import importlib
    return importlib.import_module("peft"), __import__("workers.trainer")
'''


def test_checker_catches_synthetic_violations() -> None:
    found = violations_of(SYNTHETIC, "infra/bad.py")
    assert [(v.imported.line, v.imported.module) for v in found] == [
        (6, "functions.api.app"),
        (7, "workers.consumer"),
        (10, "transformers"),
        (14, "torch.nn"),
        (15, "diffusers"),
        (21, "peft"),
        (21, "workers.trainer"),
    ]
    message = _report(found)
    assert "infra/bad.py:6: imports 'functions.api.app' (adapters must not import functions)" in message
    assert "infra/bad.py:14: imports 'torch.nn' (only workers/ may import torch)" in message


def test_checker_rules_per_layer() -> None:
    assert [str(v) for v in violations_of("from infra.settings import Settings\n", "events/x.py")] == [
        "events/x.py:1: imports 'infra.settings' (kernel must not import adapters)"
    ]
    assert [str(v) for v in violations_of("from events.usecases.jobs import queue_job\n", "events/states.py")] == [
        "events/states.py:1: imports 'events.usecases.jobs' (kernel must not import usecases)"
    ]
    assert [str(v) for v in violations_of("from infra.runtime import ServiceContext\n", "events/usecases/x.py")] == [
        "events/usecases/x.py:1: imports 'infra.runtime' (usecases must not import adapters)"
    ]
    assert [str(v) for v in violations_of("from events.usecases import jobs\n", "infra/x.py")] == [
        "infra/x.py:1: imports 'events.usecases' (adapters must not import usecases)"
    ]
    assert [str(v) for v in violations_of("import aiokafka\nfrom PIL import Image\n", "events/usecases/x.py")] == [
        "events/usecases/x.py:1: imports 'aiokafka' (usecases does no I/O: aiokafka is an adapter's)",
        "events/usecases/x.py:2: imports 'PIL' (usecases does no I/O: PIL is an adapter's)",
    ]
    # Use cases and adapters both build on the kernel; entry points on everything below them.
    assert (
        violations_of("from events.states import MODEL\nfrom events.persistence import StaleWrite\n", "infra/x.py")
        == []
    )
    assert violations_of("from events.records import jobs\n", "events/usecases/x.py") == []
    assert violations_of("from events.usecases import jobs\nfrom infra.runtime import S\n", "functions/x.py") == []
    assert violations_of("from infra.settings import Settings\nimport torch\n", "workers/x.py") == []
    assert [v.imported.module for v in violations_of("import functions.kafka_events\n", "workers/x.py")] == [
        "functions.kafka_events"
    ]
    # Names that merely start like a forbidden package are not it.
    assert violations_of("import torchvision_like\nimport workers_helper\n", "functions/x.py") == []


def test_checker_resolves_relative_imports() -> None:
    """A relative import stays inside its top-level package, so it is resolved, never mistaken for another."""
    source = "from ..workers import consumer\nfrom . import torch\nfrom .sibling import x\n"
    assert [i.module for i in imports_of(source, "functions/api/app.py")] == [
        "functions.workers",
        "functions.api",
        "functions.api.sibling",
    ]
    assert violations_of(source, "functions/api/app.py") == []
    assert [i.module for i in imports_of("from ...peft import x\n", "infra/local/x/y.py")] == ["infra.peft"]
    assert [i.module for i in imports_of("from . import a\n", "infra/local/__init__.py")] == ["infra.local"]
