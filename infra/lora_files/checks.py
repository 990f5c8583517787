"""Checking a LoRA file against a base model from its header alone (what the import validation calls, on a
range-read header of the uploaded object)."""

from __future__ import annotations

from dataclasses import dataclass

from infra.base_models import BaseModelSpec, Family
from infra.lora_files.errors import AdapterFileError, AdapterProblem, shown
from infra.lora_files.layout import Plan, PlannedLayer, Shapes, plan, shape_problem
from infra.lora_files.manifests import Manifest, all_manifests, manifest_for
from infra.lora_files.safetensors_file import SafetensorsHeader, read_header

FAMILY_LABELS = {Family.SD15: "an SD 1.5", Family.SDXL: "an SDXL", Family.FLUX: "a FLUX.1"}
_SHOWN = 3  # how many offending keys a message names


@dataclass(frozen=True)
class AdapterLimits:
    """What an imported adapter may be at most."""

    max_rank: int = 256
    max_bytes: int = 2 * 1024**3


@dataclass(frozen=True)
class AdapterSummary:
    """What a checked LoRA file is: its key naming (`diffusers`, `peft`, `kohya`, or `mixed`), the family it fits,
    its rank (the largest of its layers'; see `layer_rank` for FLUX's fused ones), how many file-level layers it
    has, on which components (`unet` or `transformer`, `text_encoder`, `text_encoder_2`), and its tensors' dtype
    (`F16`, `BF16`, `F32`; `mixed` if several)."""

    naming: str
    family: Family
    rank: int
    layers: int
    components: tuple[str, ...]
    dtype: str


def _few(keys: list[str]) -> str:
    quoted = ", ".join(shown(key) for key in keys[:_SHOWN])
    return quoted + (f" and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else "")


def layer_rank(layer: PlannedLayer, shapes: Shapes) -> int:
    """A layer's rank as the limit counts it: its down weight's rows, except for a fused layer (FLUX's kohya qkv)
    whose rows split evenly among its parts, which counts one part's (what a block-diagonal export of a rank-r
    adapter has: `parts x r` rows, r per module). A header cannot tell block-diagonal from dense (sd-scripts' own
    fused layers, whose every part has the full rank): the conversion, which sees the values, checks each part's
    rank again (`convert.read_layers`)."""
    rows = shapes[layer.down][0]
    parts = len(layer.target.modules)
    return rows // parts if parts > 1 and rows % parts == 0 else rows


def check_alpha_shapes(result: Plan, header: SafetensorsHeader) -> None:
    """Each layer's alpha, where it has one, is a single value (its shape is 0-d or all ones)."""
    for layer in result.layers:
        if layer.alpha and header.tensors[layer.alpha].count != 1:
            shape = list(header.tensors[layer.alpha].shape)
            raise AdapterFileError(
                AdapterProblem.BAD_ALPHA, f"alpha {shown(layer.alpha)} has shape {shape}; an alpha is one value"
            )


def _fits(header: SafetensorsHeader, manifest: Manifest) -> bool:
    shapes = {name: info.shape for name, info in header.tensors.items()}
    result = plan(shapes, manifest)
    clean = result.layers and not (result.unknown or result.not_lora or result.incomplete)
    return bool(clean) and all(shape_problem(layer, shapes, manifest) is None for layer in result.layers)


def _other_family(header: SafetensorsHeader, spec: BaseModelSpec) -> Manifest | None:
    """The manifest of another family the file fits exactly, real bases first."""
    return next((m for m in all_manifests() if m.family is not spec.family and _fits(header, m)), None)


def _wrong_family(manifest: Manifest, spec: BaseModelSpec) -> AdapterFileError:
    return AdapterFileError(
        AdapterProblem.WRONG_FAMILY,
        f"this file is {FAMILY_LABELS[manifest.family]} ({manifest.family.value}) LoRA; base model {spec.name!r} "
        f"is on {spec.family.value}",
    )


def check_header(header: SafetensorsHeader, spec: BaseModelSpec, limits: AdapterLimits | None = None) -> Plan:
    """Check a parsed header against `spec` (see `check_adapter`) and return its plan."""
    limits = limits or AdapterLimits()
    if header.file_size > limits.max_bytes:
        raise AdapterFileError(
            AdapterProblem.TOO_LARGE, f"the file has {header.file_size} bytes; at most {limits.max_bytes} are taken"
        )
    manifest = manifest_for(spec)
    shapes = {name: info.shape for name, info in header.tensors.items()}
    result = plan(shapes, manifest)
    if not result.layers and not result.unknown:
        raise AdapterFileError(
            AdapterProblem.NO_LORA_KEYS,
            f"no LoRA weights (lora_A/lora_B or lora_down/lora_up pairs) among its {len(header.tensors)} tensors"
            + (f", e.g. {_few(sorted(header.tensors))}" if header.tensors else ""),
        )
    if result.unknown or result.not_lora or result.incomplete:
        if other := _other_family(header, spec):
            raise _wrong_family(other, spec)
        if result.unknown:
            raise AdapterFileError(
                AdapterProblem.UNKNOWN_LAYERS,
                f"{len(result.unknown)} LoRA layers name layers base model {spec.name!r} does not have: "
                f"{_few(result.unknown)}",
            )
        odd = result.not_lora + result.incomplete
        raise AdapterFileError(
            AdapterProblem.UNKNOWN_LAYERS, f"{len(odd)} tensors are not parts of a LoRA layer: {_few(odd)}"
        )
    problems = [p for layer in result.layers if (p := shape_problem(layer, shapes, manifest))]
    if problems:
        if other := _other_family(header, spec):
            raise _wrong_family(other, spec)
        raise AdapterFileError(
            AdapterProblem.SHAPE_MISMATCH,
            f"{len(problems)} layers do not fit base model {spec.name!r}: {'; '.join(problems[:_SHOWN])}",
        )
    check_alpha_shapes(result, header)
    rank = max(layer_rank(layer, shapes) for layer in result.layers)
    if rank > limits.max_rank:
        raise AdapterFileError(AdapterProblem.RANK_TOO_LARGE, f"rank {rank}; at most {limits.max_rank} is taken")
    return result


def check_adapter(
    data: bytes, spec: BaseModelSpec, limits: AdapterLimits | None = None, file_size: int | None = None
) -> AdapterSummary:
    """Check a LoRA file against `spec`'s layers: `data` is the whole file or only its first
    `safetensors_file.header_bytes_needed` bytes (then give `file_size`, the object's full size). Raises
    AdapterFileError: NOT_SAFETENSORS, TRUNCATED, UNSUPPORTED_DTYPE, TOO_LARGE, NO_LORA_KEYS, WRONG_FAMILY (naming
    the family the file fits), UNKNOWN_LAYERS (naming a few), SHAPE_MISMATCH (a layer and both shapes),
    RANK_TOO_LARGE."""
    header = read_header(data, file_size=file_size)
    result = check_header(header, spec, limits)
    shapes = {name: info.shape for name, info in header.tensors.items()}
    dtypes = {header.tensors[key].dtype for layer in result.layers for key in (layer.down, layer.up)}
    return AdapterSummary(
        naming=result.naming,
        family=spec.family,
        rank=max(layer_rank(layer, shapes) for layer in result.layers),
        layers=len(result.layers),
        components=tuple(sorted({layer.target.component for layer in result.layers})),
        dtype=dtypes.pop() if len(dtypes) == 1 else "mixed",
    )
