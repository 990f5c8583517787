"""The key namings of a LoRA file, mapped through a base model's manifest to its layers.

A LoRA layer is a pair of weights (down `[r, in(, kh, kw)]`, up `[out, r(, 1, 1)]`) on one module of one component.
The namings:
- diffusers (`save_lora_weights`, what the service serves): `{component}.{module}.lora_A.weight` / `lora_B`, and
  diffusers' older `.lora.down.weight` / `.lora.up.weight` (`lora_linear_layer`, `attn1.processor.to_q_lora`);
- peft (a PeftModel's save): `base_model.model.{module}.lora_A.weight`, or the bare `{module}.lora_A.weight`
  (no component: looked up in the manifest, the denoiser first);
- kohya (sd-scripts; AUTOMATIC1111, Forge, ComfyUI): `{lora_name}.lora_down.weight`, `.lora_up.weight` and an
  `.alpha` scalar (the layer's output is scaled by alpha / rank), where `lora_name` is the module path with dots
  turned into underscores behind `lora_unet_` / `lora_te_` (`lora_te1_`, `lora_te2_` for two encoders). SD 1.5
  uses diffusers' UNet paths; SDXL sd-scripts' original (SGM) UNet paths (`input_blocks_4_1_...`, `middle_block`,
  `output_blocks`), diffusers-style ones accepted on import; FLUX.1 BFL's paths, with q, k, v (and in single
  blocks the MLP input) fused into one layer: the fused down is the parts' downs stacked (rank = parts x r), the up
  block-diagonal, which is exact, and which diffusers' kohya reader splits back when the off-diagonal blocks are
  zero. Text encoders are named as in transformers before 5.x (`text_model_encoder_layers_...`), both accepted.

Since the underscores cannot be undone by rule, every kohya name a manifest's modules have is computed forwards
(`kohya_targets`) and looked up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from infra.base_models import Family
from infra.lora_files.manifests import COMPONENT_ORDER, Manifest

DIFFUSERS = "diffusers"
PEFT = "peft"
KOHYA = "kohya"
DOWN, UP, ALPHA = "down", "up", "alpha"

# kohya's prefix for each component, by family: the first is what an export writes, the rest are accepted.
KOHYA_PREFIXES: dict[Family, dict[str, tuple[str, ...]]] = {
    Family.SD15: {"unet": ("lora_unet_",), "text_encoder": ("lora_te_", "lora_te1_")},
    Family.SDXL: {"unet": ("lora_unet_",), "text_encoder": ("lora_te1_",), "text_encoder_2": ("lora_te2_",)},
    Family.FLUX: {"transformer": ("lora_unet_",), "text_encoder": ("lora_te1_", "lora_te_")},
}
_KOHYA_ROLE = {"lora_down.weight": DOWN, "lora_up.weight": UP, "alpha": ALPHA}
# diffusers' and peft's role suffixes (the older diffusers forms too), longest first.
_DIFFUSERS_ROLE = (
    (".lora_A.default.weight", DOWN),
    (".lora_B.default.weight", UP),
    (".lora_A.weight", DOWN),
    (".lora_B.weight", UP),
    (".lora_linear_layer.down.weight", DOWN),
    (".lora_linear_layer.up.weight", UP),
    (".lora.down.weight", DOWN),
    (".lora.up.weight", UP),
    (".alpha", ALPHA),
)
_PROCESSOR = re.compile(r"\.processor\.(to_q|to_k|to_v|to_out)_lora\.")
_PEFT_PREFIX = "base_model.model."
# CLIP's module paths in transformers before 5.x started with `text_model.`; kohya names still do.
_CLIP_ROOTS = ("encoder.", "embeddings.", "final_layer_norm")


@dataclass(frozen=True)
class Target:
    """What one file-level LoRA layer adapts: one module, or several fused along the output (FLUX's qkv), and
    whether its output rows come in the other order (FLUX's final modulation: shift/scale swapped)."""

    component: str
    modules: tuple[str, ...]
    swap_halves: bool = False

    @property
    def fused(self) -> bool:
        return len(self.modules) > 1


def flat(module: str) -> str:
    """kohya's spelling of a module path."""
    return module.replace(".", "_")


def _text_names(module: str) -> tuple[str, ...]:
    """A CLIP module's kohya spellings: with transformers' old `text_model.` root first (what A1111 expects)."""
    if module.startswith(_CLIP_ROOTS):
        return (flat(f"text_model.{module}"), flat(module))
    if module.startswith("text_model."):  # CLIPTextModelWithProjection keeps the root in transformers 5.x
        return (flat(module), flat(module.removeprefix("text_model.")))
    return (flat(module),)


def _sgm_unet_name(module: str, layers_per_block: int, up_attention_blocks: frozenset[int]) -> str | None:
    """An SDXL UNet module's path in sd-scripts' original (SGM) UNet, the inverse of diffusers'
    `_maybe_map_sgm_blocks_to_diffusers` (None: a module with no SGM spelling)."""
    resnet = {"conv1": "in_layers.2", "conv2": "out_layers.3", "time_emb_proj": "emb_layers.1"}
    resnet["conv_shortcut"] = "skip_connection"
    fixed = {
        "conv_in": "input_blocks.0.0",
        "conv_out": "out.2",
        "time_embedding.linear_1": "time_embed.0",
        "time_embedding.linear_2": "time_embed.2",
        "add_embedding.linear_1": "label_emb.0.0",
        "add_embedding.linear_2": "label_emb.0.2",
    }
    if module in fixed:
        return fixed[module]
    step = layers_per_block + 1
    if m := re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", module):
        block, kind, layer, rest = int(m[1]), m[2], int(m[3]), m[4]
        inner, rest = (0, resnet.get(rest, rest)) if kind == "resnets" else (1, rest)
        return f"input_blocks.{1 + block * step + layer}.{inner}.{rest}"
    if m := re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv", module):
        return f"input_blocks.{(int(m[1]) + 1) * step}.0.op"
    if m := re.fullmatch(r"mid_block\.(resnets|attentions)\.(\d+)\.(.+)", module):
        index = {("resnets", "0"): 0, ("attentions", "0"): 1, ("resnets", "1"): 2}[(m[1], m[2])]
        rest = resnet.get(m[3], m[3]) if m[1] == "resnets" else m[3]
        return f"middle_block.{index}.{rest}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", module):
        block, kind, layer, rest = int(m[1]), m[2], int(m[3]), m[4]
        inner, rest = (0, resnet.get(rest, rest)) if kind == "resnets" else (1, rest)
        return f"output_blocks.{block * step + layer}.{inner}.{rest}"
    if m := re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv", module):
        block = int(m[1])
        return f"output_blocks.{block * step + layers_per_block}.{2 if block in up_attention_blocks else 1}.conv"
    return None


def _flux_targets(modules: dict[str, tuple[int, ...]]) -> dict[str, Target]:
    """FLUX's transformer in BFL's names (what diffusers' `_convert_kohya_flux_lora_to_diffusers` reads)."""
    c = "transformer"
    targets: dict[str, Target] = {
        "img_in": Target(c, ("x_embedder",)),
        "txt_in": Target(c, ("context_embedder",)),
        "time_in_in_layer": Target(c, ("time_text_embed.timestep_embedder.linear_1",)),
        "time_in_out_layer": Target(c, ("time_text_embed.timestep_embedder.linear_2",)),
        "vector_in_in_layer": Target(c, ("time_text_embed.text_embedder.linear_1",)),
        "vector_in_out_layer": Target(c, ("time_text_embed.text_embedder.linear_2",)),
        "guidance_in_in_layer": Target(c, ("time_text_embed.guidance_embedder.linear_1",)),
        "guidance_in_out_layer": Target(c, ("time_text_embed.guidance_embedder.linear_2",)),
        "final_layer_linear": Target(c, ("proj_out",)),
        "final_layer_adaLN_modulation_1": Target(c, ("norm_out.linear",), swap_halves=True),
    }
    doubles = {int(m[1]) for name in modules if (m := re.match(r"transformer_blocks\.(\d+)\.", name))}
    singles = {int(m[1]) for name in modules if (m := re.match(r"single_transformer_blocks\.(\d+)\.", name))}
    for i in sorted(doubles):
        block = f"transformer_blocks.{i}."
        parts = {
            "img_attn_qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
            "img_attn_proj": ("attn.to_out.0",),
            "txt_attn_qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
            "txt_attn_proj": ("attn.to_add_out",),
            "img_mlp_0": ("ff.net.0.proj",),
            "img_mlp_2": ("ff.net.2",),
            "txt_mlp_0": ("ff_context.net.0.proj",),
            "txt_mlp_2": ("ff_context.net.2",),
            "img_mod_lin": ("norm1.linear",),
            "txt_mod_lin": ("norm1_context.linear",),
        }
        for name, paths in parts.items():
            targets[f"double_blocks_{i}_{name}"] = Target(c, tuple(block + p for p in paths))
    for i in sorted(singles):
        block = f"single_transformer_blocks.{i}."
        parts = {
            "linear1": ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"),
            "linear2": ("proj_out",),
            "modulation_lin": ("norm.linear",),
        }
        for name, paths in parts.items():
            targets[f"single_blocks_{i}_{name}"] = Target(c, tuple(block + p for p in paths))
    return {name: target for name, target in targets.items() if all(m in modules for m in target.modules)}


@dataclass(frozen=True)
class KohyaNames:
    """A manifest's kohya names: every accepted name's target, and the name an export writes for each module."""

    targets: dict[str, Target]  # lora_name (with its prefix) -> target
    export: dict[tuple[str, str], str]  # (component, module) -> the lora_name its layer is written under


@cache
def kohya_names(manifest: Manifest) -> KohyaNames:
    """Every kohya name of `manifest`'s layers (see the module docstring); the first spelling of each is the
    export's."""
    targets: dict[str, Target] = {}
    export: dict[tuple[str, str], str] = {}

    def add(name: str, target: Target) -> None:
        targets.setdefault(name, target)
        for module in target.modules:
            export.setdefault((target.component, module), name)

    prefixes = KOHYA_PREFIXES[manifest.family]
    for component, modules in manifest.layers.items():
        if component == "transformer":
            for name, target in _flux_targets(modules).items():
                add(prefixes[component][0] + name, target)
            continue
        if component == "unet" and manifest.family is Family.SDXL:
            layers_per_block = 1 + max(
                int(m[1]) for k in modules if (m := re.match(r"down_blocks\.0\.resnets\.(\d+)\.", k))
            )
            up_attention = frozenset(
                int(m[1]) for k in modules if (m := re.match(r"up_blocks\.(\d+)\.attentions\.", k))
            )
            for module in modules:
                if sgm := _sgm_unet_name(module, layers_per_block, up_attention):
                    add(prefixes[component][0] + flat(sgm), Target(component, (module,)))
        for module in modules:
            spellings = _text_names(module) if component.startswith("text_encoder") else (flat(module),)
            for prefix in prefixes[component]:
                for spelling in spellings:
                    add(prefix + spelling, Target(component, (module,)))
    return KohyaNames(targets, export)


@dataclass(frozen=True)
class KeyRef:
    """One key of a file, read in a naming: the layer it belongs to (`group`: its name in that naming) and its
    role (down, up, alpha)."""

    naming: str
    group: str
    role: str


def read_key(key: str) -> KeyRef | None:
    """A key's naming, layer group and role, by its spelling alone (None: not a LoRA weight in any naming)."""
    if key.startswith("lora_"):
        name, _, suffix = key.partition(".")
        role = _KOHYA_ROLE.get(suffix)
        return KeyRef(KOHYA, name, role) if role else None
    normalized = _PROCESSOR.sub(lambda m: f".{'to_out.0' if m[1] == 'to_out' else m[1]}.lora.", key)
    for suffix, role in _DIFFUSERS_ROLE:
        if normalized.endswith(suffix):
            group = normalized[: -len(suffix)]
            component = group.partition(".")[0]
            naming = DIFFUSERS if component in COMPONENT_ORDER else PEFT
            return KeyRef(naming, group, role)
    return None


def diffusers_target(naming: str, group: str, manifest: Manifest, shape: tuple[int, ...] | None) -> Target | None:
    """The layer a diffusers or peft group names in `manifest` (None: no such layer). A peft group names no
    component: the first component (denoiser first) with that module, preferring one whose input width fits
    `shape` (the down weight's)."""
    if naming == DIFFUSERS:
        component, _, module = group.partition(".")
        module = module.removeprefix(_PEFT_PREFIX)
        candidates = [(component, module)]
    else:
        module = group.removeprefix(_PEFT_PREFIX)
        candidates = [(component, module) for component in COMPONENT_ORDER]
    found: list[Target] = []
    for component, path in candidates:
        for spelling in (path, path.removeprefix("text_model."), f"text_model.{path}"):
            if (base := manifest.shape(component, spelling)) is not None:
                target = Target(component, (spelling,))
                if shape is not None and len(shape) >= 2 and base[1] == shape[1]:
                    return target
                found.append(target)
                break
    return found[0] if found else None


def diffusers_key(component: str, module: str, role: str) -> str:
    """The key the trainer's `save_lora_weights` writes for a layer's down or up weight."""
    return f"{component}.{module}.{'lora_A' if role == DOWN else 'lora_B'}.weight"


def kohya_key(name: str, role: str) -> str:
    """A kohya key: `{lora_name}.lora_down.weight`, `.lora_up.weight` or `.alpha`."""
    return f"{name}.{ {DOWN: 'lora_down.weight', UP: 'lora_up.weight', ALPHA: 'alpha'}[role] }"
