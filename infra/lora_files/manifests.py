"""Every LoRA-adaptable layer (nn.Linear, nn.Conv2d) of a base model's components, with its weight shape: what an
adapter file's keys and shapes are checked against, and what the kohya names are mapped through (kohya flattens a
module path's dots to underscores, so only the real module names can undo it).

One manifest per built-in tiny model (one with another's architecture may share its file: `ALIASES`) and one
per family for the real bases (SD 1.5: the runwayml UNet and CLIP ViT-L; SDXL base 1.0: its UNet, CLIP ViT-L and
OpenCLIP ViT-bigG; FLUX.1-dev: its transformer and CLIP ViT-L). The JSON files in `manifests/` are generated on the
meta device from the architectures (`python -m tests.model.lora_manifests`: it needs torch, which this package may
not import) and a drift test keeps them equal to what it makes now.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from infra.base_models import BaseModelSpec, Family

# The file of each family's real base, and the built-ins that share another's architecture.
FAMILY_MANIFESTS = {Family.SD15: "sd-1_5", Family.SDXL: "sd-xl", Family.FLUX: "flux.1"}
BUILTIN_MANIFESTS = ("tiny-sd", "tiny-sdxl", "tiny-flux", "tiny-shapes")
ALIASES: dict[str, str] = {}  # a built-in with another's architecture: its name -> that one's file
# The denoiser first: a key that names no component (peft's bare form) is looked up in this order.
COMPONENT_ORDER = ("unet", "transformer", "text_encoder", "text_encoder_2")


@dataclass(frozen=True, eq=False)  # hashed by identity: each file is loaded once (`load_manifest`)
class Manifest:
    """A base model's adaptable layers: `layers[component][module path]` is the weight's shape
    (`[out, in]` for a Linear, `[out, in, kh, kw]` for a Conv2d)."""

    name: str
    family: Family
    description: str
    layers: dict[str, dict[str, tuple[int, ...]]]

    @property
    def denoiser(self) -> str:
        """`unet` (SD 1.5, SDXL) or `transformer` (FLUX)."""
        return "transformer" if "transformer" in self.layers else "unet"

    def shape(self, component: str, module: str) -> tuple[int, ...] | None:
        """The layer's weight shape, None if the component has no such layer."""
        return self.layers.get(component, {}).get(module)

    def to_json(self) -> str:
        """The committed form: one layer a line, so a change reads as a small diff."""
        lines = [
            "{",
            f'  "name": {json.dumps(self.name)},',
            f'  "family": {json.dumps(self.family.value)},',
            f'  "description": {json.dumps(self.description)},',
            '  "layers": {',
        ]
        for c_index, (component, modules) in enumerate(self.layers.items()):
            lines.append(f"    {json.dumps(component)}: {{")
            items = list(modules.items())
            for m_index, (module, shape) in enumerate(items):
                comma = "," if m_index < len(items) - 1 else ""
                lines.append(f"      {json.dumps(module)}: {json.dumps(list(shape))}{comma}")
            lines.append("    }" + ("," if c_index < len(self.layers) - 1 else ""))
        lines += ["  }", "}", ""]
        return "\n".join(lines)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        raw = json.loads(text)
        layers = {
            component: {module: tuple(shape) for module, shape in modules.items()}
            for component, modules in raw["layers"].items()
        }
        return cls(raw["name"], Family(raw["family"]), raw["description"], layers)


@cache
def load_manifest(name: str) -> Manifest:
    """A committed manifest by file name (`tiny-sd`, `sd-xl`, ...)."""
    name = ALIASES.get(name, name)
    text = resources.files("infra.lora_files").joinpath("manifests", f"{name}.json").read_text("utf-8")
    return Manifest.from_json(text)


def manifest_for(spec: BaseModelSpec) -> Manifest:
    """The layers of `spec`'s architecture: a built-in's own, else its family's real base."""
    if spec.is_builtin and (spec.name in BUILTIN_MANIFESTS or spec.name in ALIASES):
        return load_manifest(spec.name)
    return load_manifest(FAMILY_MANIFESTS[spec.family])


def all_manifests() -> tuple[Manifest, ...]:
    """Every committed manifest (the family checks try each to name the family a file fits)."""
    return tuple(load_manifest(name) for name in (*FAMILY_MANIFESTS.values(), *BUILTIN_MANIFESTS))
