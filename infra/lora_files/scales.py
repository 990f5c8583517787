"""The scale a LoRA layer's output takes (alpha / rank), from wherever a file says it: kohya's (and older
diffusers') `.alpha` tensors, or the `lora_adapter_metadata` that diffusers >= 0.34 writes into `__metadata__`.

That metadata is JSON of each component's peft `LoraConfig` (`LoraConfig.to_dict()`), its keys prefixed by the
component (`unet.r`, `unet.lora_alpha`, `unet.alpha_pattern`, …: `save_lora_weights(unet_lora_adapter_metadata=…)`),
or unprefixed when a single model saved itself (`save_lora_adapter`). diffusers builds the `LoraConfig` from it as
is, so a module's alpha is its `alpha_pattern` entry else `lora_alpha`, its rank its `rank_pattern` entry else `r`
(peft's `get_pattern_key` matching), and the scale alpha / rank (alpha / sqrt(rank) with `use_rslora`).
A layer with neither (peft's own files, whose alphas are in an `adapter_config.json` beside them, or the service's
trainer's) is taken at alpha = rank: scale 1.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from infra.lora_files.errors import AdapterFileError, AdapterProblem, shown
from infra.lora_files.manifests import COMPONENT_ORDER

METADATA_KEY = "lora_adapter_metadata"  # diffusers' LORA_ADAPTER_METADATA_KEY
# An alpha over this many times the rank scales a layer by 10^4 or more: no real adapter, a corrupt or hostile one.
MAX_ALPHA_PER_RANK = 1e4
# LoraConfig's defaults, which diffusers' LoraConfig(**metadata) falls back to for a missing `r` or `lora_alpha`.
_PEFT_DEFAULT_R = 8
_PEFT_DEFAULT_ALPHA = 8
# Pattern keys are peft regexes; real ones are module paths (letters, digits, `_`, `.`). Anything else is refused
# rather than run: a hostile pattern could backtrack for minutes.
_PLAIN_PATTERN = re.compile(r"[A-Za-z0-9_.]{1,300}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def checked_scale(alpha: float, rank: int, where: str, rslora: bool = False) -> float:
    """alpha / rank (alpha / sqrt(rank) with rslora) in float32, as the fold multiplies by it, for a finite alpha
    in (0, MAX_ALPHA_PER_RANK x rank]; else AdapterFileError BAD_ALPHA naming `where`."""
    if not (math.isfinite(alpha) and 0 < alpha <= MAX_ALPHA_PER_RANK * rank):
        raise AdapterFileError(
            AdapterProblem.BAD_ALPHA,
            f"{where}: alpha {alpha} for rank {rank}; an alpha is a finite number above 0 and at most "
            f"{MAX_ALPHA_PER_RANK:g} x the rank",
        )
    return float(np.float32(alpha) / np.float32(math.sqrt(rank) if rslora else rank))


@dataclass(frozen=True)
class ComponentConfig:
    """One component's LoRA config as diffusers would build it from the metadata."""

    r: int
    lora_alpha: float
    rank_pattern: dict[str, int]
    alpha_pattern: dict[str, float]
    use_rslora: bool

    def scale(self, module: str, rank: int, where: str) -> float:
        """The scale of `module`'s layer (its weights' rank `rank`); AdapterFileError if the config's rank for it
        is not the weights' (diffusers could not load the file) or its alpha is not sane."""
        names = (module, f"text_model.{module}")  # transformers < 5 named CLIP's modules under `text_model.`
        r = next((v for k, v in self.rank_pattern.items() if any(_matches(k, n) for n in names)), self.r)
        alpha = next((v for k, v in self.alpha_pattern.items() if any(_matches(k, n) for n in names)), self.lora_alpha)
        if r != rank:
            raise AdapterFileError(
                AdapterProblem.SHAPE_MISMATCH,
                f"{where}: its {METADATA_KEY} says rank {r}; its weights have rank {rank}",
            )
        return checked_scale(alpha, rank, where, self.use_rslora)


def _matches(pattern: str, module: str) -> bool:
    """peft's `get_pattern_key` test: the pattern matches the whole module path or a dotted suffix of it."""
    return re.match(rf"(.*\.)?({pattern})$", module) is not None


def _bad(message: str) -> AdapterFileError:
    return AdapterFileError(AdapterProblem.BAD_ALPHA, f"its {METADATA_KEY} {message}")


def _pattern(value: object, field: str, kind: str) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(f"has a {field} that is not a map")
    for key, entry in value.items():
        if not _PLAIN_PATTERN.fullmatch(key):
            raise _bad(f"{field} has the key {shown(key)}: only module paths are read, not regex syntax")
        if not _is_number(entry) or (kind == "rank" and not isinstance(entry, int)):
            raise _bad(f"{field}[{shown(key)}] is {shown(str(entry))}, not a {kind}")
    return dict(value)


def _component_config(fields: Mapping[str, object], component: str) -> ComponentConfig:
    r = fields.get("r", _PEFT_DEFAULT_R)
    alpha = fields.get("lora_alpha", _PEFT_DEFAULT_ALPHA)
    rslora = fields.get("use_rslora", False)
    if not isinstance(r, int) or isinstance(r, bool) or r < 1:
        raise _bad(f"gives {component or 'the model'} r = {shown(str(r))}, not a rank")
    if not _is_number(alpha):
        raise _bad(f"gives {component or 'the model'} lora_alpha = {shown(str(alpha))}, not a number")
    if not isinstance(rslora, bool):
        raise _bad(f"gives {component or 'the model'} use_rslora = {shown(str(rslora))}, not true or false")
    ranks = {k: int(v) for k, v in _pattern(fields.get("rank_pattern"), "rank_pattern", "rank").items()}
    alphas = _pattern(fields.get("alpha_pattern"), "alpha_pattern", "number")
    if any(v < 1 for v in ranks.values()):
        raise _bad("rank_pattern has a rank below 1")
    return ComponentConfig(r, float(alpha), ranks, alphas, rslora)


def metadata_configs(metadata: Mapping[str, str]) -> dict[str, ComponentConfig]:
    """Each component's config from a file's `__metadata__` (`""`: the unprefixed one, for any component without
    its own); empty when the file carries none. AdapterFileError BAD_ALPHA when it is not what diffusers writes."""
    raw = metadata.get(METADATA_KEY)
    if raw is None:
        return {}
    try:
        parsed = json.loads(raw)
    except (ValueError, RecursionError):
        raise _bad("is not JSON") from None
    if not isinstance(parsed, dict):
        raise _bad("is not a JSON object")
    grouped: dict[str, dict[str, object]] = {}
    for key, value in parsed.items():
        component, dot, field = key.partition(".")
        if dot and component in COMPONENT_ORDER:
            grouped.setdefault(component, {})[field] = value
        else:
            grouped.setdefault("", {})[key] = value
    if "" in grouped and not {"r", "lora_alpha"} & grouped[""].keys():
        del grouped[""]  # only other LoraConfig fields, unprefixed: no config of a model of its own
    return {component: _component_config(fields, component) for component, fields in grouped.items()}
