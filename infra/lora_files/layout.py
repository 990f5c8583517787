"""Which layer of a base model each key of a LoRA file belongs to, from the keys and shapes alone (a header is
enough): the plan that checks validate and conversions follow."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from infra.lora_files.manifests import Manifest
from infra.lora_files.naming import ALPHA, DOWN, KOHYA, UP, Target, diffusers_target, kohya_names, read_key

Shapes = Mapping[str, tuple[int, ...]]


@dataclass(frozen=True)
class PlannedLayer:
    """One file-level LoRA layer: what it adapts and its keys (alpha: kohya's, None when absent)."""

    target: Target
    down: str
    up: str
    alpha: str | None = None


@dataclass
class Plan:
    """A file's keys read against one manifest."""

    namings: Counter[str] = field(default_factory=Counter)
    layers: list[PlannedLayer] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # LoRA keys naming a layer the manifest lacks
    not_lora: list[str] = field(default_factory=list)  # keys in no LoRA naming at all
    incomplete: list[str] = field(default_factory=list)  # a down weight without its up weight, or the reverse

    @property
    def naming(self) -> str:
        """The file's naming (`diffusers`, `peft`, `kohya`; `mixed` if several)."""
        return self.namings.most_common(1)[0][0] if len(self.namings) == 1 else "mixed"


def plan(shapes: Shapes, manifest: Manifest) -> Plan:
    """Group the keys into layers and find each layer's module(s) in `manifest`."""
    result = Plan()
    groups: dict[tuple[str, str], dict[str, str]] = {}
    for key in sorted(shapes):
        ref = read_key(key)
        if ref is None:
            result.not_lora.append(key)
            continue
        result.namings[ref.naming] += 1
        groups.setdefault((ref.naming, ref.group), {})[ref.role] = key
    names = kohya_names(manifest)
    for (naming, group), roles in groups.items():
        if DOWN not in roles or UP not in roles:
            result.incomplete.extend(roles.values())
            continue
        if naming == KOHYA:
            target = names.targets.get(group)
        else:
            target = diffusers_target(naming, group, manifest, shapes[roles[DOWN]])
        if target is None:
            result.unknown.append(roles[DOWN])
            continue
        result.layers.append(PlannedLayer(target, roles[DOWN], roles[UP], roles.get(ALPHA)))
    return result


def shape_problem(layer: PlannedLayer, shapes: Shapes, manifest: Manifest) -> str | None:
    """Why a layer's weights do not fit the base's module(s), in words naming both shapes (None: they fit)."""
    down, up = tuple(shapes[layer.down]), tuple(shapes[layer.up])
    bases = [manifest.shape(layer.target.component, module) or () for module in layer.target.modules]
    where = f"{layer.target.component}.{'+'.join(layer.target.modules)}"
    if len(down) < 2 or len(up) < 2 or down[0] != up[1]:
        return f"{where}: down {list(down)} and up {list(up)} are not a LoRA pair"
    if down[0] == 0:  # no weights, and alpha / rank would divide by zero
        return f"{where}: down {list(down)} and up {list(up)} have rank 0"
    out = sum(base[0] for base in bases)
    first = bases[0]
    expected_down = (down[0], *first[1:])
    expected_up = (out, down[0], *([1] * (len(first) - 2)))
    if down != expected_down or up != expected_up:
        layer_shape = [out, *first[1:]]
        return f"{where}: down {list(down)} and up {list(up)} do not fit the base's layer {layer_shape}"
    return None
