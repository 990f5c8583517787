"""Converting LoRA files between the namings: to what the service serves (diffusers) and to kohya's.

Both go through one form: the file's layers unfused, one (down, up) pair per module, with the layer's scale
(`scales.py`: kohya's alpha / rank, or what diffusers' `lora_adapter_metadata` gives; peft files carry no alphas
and are taken at alpha = rank) folded into the up weight (float32 arithmetic, stored back in the file's dtype; a
scale of exactly 1, what every file the service writes has, is not computed at all, so no bit changes). The
diffusers form needs no alphas: the generator loads a layer at alpha = rank. The kohya form writes alpha = rank
(scale 1), as a scalar in the layer's dtype (sd-scripts converts its alphas to the save precision with the
weights), and fuses FLUX's q, k, v (and single blocks' MLP input) as
`naming.py` describes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infra.base_models import BaseModelSpec
from infra.lora_files.checks import AdapterLimits, check_header
from infra.lora_files.errors import AdapterFileError, AdapterProblem
from infra.lora_files.kohya_metadata import KohyaMetadata, with_hashes
from infra.lora_files.layout import PlannedLayer
from infra.lora_files.manifests import Manifest, manifest_for
from infra.lora_files.naming import ALPHA, DOWN, KOHYA, UP, diffusers_key, kohya_key, kohya_names, read_key
from infra.lora_files.safetensors_file import Tensor, read_file, write_file
from infra.lora_files.scales import ComponentConfig, checked_scale, metadata_configs

# What diffusers' `save_lora_weights` puts in `__metadata__`: the served file is exactly what the trainer writes.
DIFFUSERS_METADATA = {"format": "pt"}


@dataclass(frozen=True)
class Layer:
    """One module's LoRA pair at scale 1."""

    component: str
    module: str
    down: Tensor
    up: Tensor


def _swap_halves(values: np.ndarray) -> np.ndarray:
    half = values.shape[0] // 2
    return np.concatenate([values[half:], values[:half]], axis=0)


def _nonzero(values: np.ndarray, dtype: str) -> bool:
    """Whether any value is other than ±0, in the dtype's own storage (BF16: its raw bits, sign masked)."""
    return bool((values & np.uint16(0x7FFF)).any()) if dtype == "BF16" else bool(values.any())


def _scale(planned: PlannedLayer, tensors: dict[str, Tensor], configs: dict[str, ComponentConfig]) -> float:
    """The layer's scale: its alpha tensor's / rank, else its metadata config's, else 1 (alpha = rank)."""
    rank = tensors[planned.down].shape[0]
    target = planned.target
    where = f"{target.component}.{'+'.join(target.modules)}"
    if planned.alpha:
        return checked_scale(float(tensors[planned.alpha].to_float32().reshape(-1)[0]), rank, where)
    config = configs.get(target.component) or configs.get("")
    if config is None or target.fused or read_key(planned.down).naming == KOHYA:  # type: ignore[union-attr]
        return 1.0  # diffusers reads its metadata for diffusers and peft keys only
    return config.scale(target.modules[0], rank, where)


def _unfuse(planned: PlannedLayer, tensors: dict[str, Tensor], manifest: Manifest, scale: float) -> list[Layer]:
    """The layer's (down, up) pair per module at scale 1: `scale` folded into the up weight, a fused layer split.
    Only the fold converts values; swaps and splits move the dtype's own storage."""
    down, up = tensors[planned.down], tensors[planned.up]
    if scale != 1:
        up = Tensor.from_float32(up.to_float32() * np.float32(scale), up.dtype)
    target = planned.target
    if target.swap_halves:
        up = Tensor(up.dtype, _swap_halves(up.array))
    if not target.fused:
        return [Layer(target.component, target.modules[0], down, up)]
    rank = down.shape[0]
    outs = [(manifest.shape(target.component, module) or (0,))[0] for module in target.modules]
    starts = np.cumsum([0, *outs])
    parts = len(target.modules)
    part_rank = rank // parts
    # Block-diagonal (what `to_kohya` writes): each part's own rows of the down weight; else all of them.
    sparse = rank % parts == 0 and not any(
        _nonzero(up.array[starts[j] : starts[j + 1], k * part_rank : (k + 1) * part_rank], up.dtype)
        for j in range(parts)
        for k in range(parts)
        if j != k
    )
    layers = []
    for j, module in enumerate(target.modules):
        rows = up.array[starts[j] : starts[j + 1]]
        if sparse:
            part_down, part_up = (
                down.array[j * part_rank : (j + 1) * part_rank],
                rows[:, j * part_rank : (j + 1) * part_rank],
            )
        else:
            part_down, part_up = down.array, rows
        if not _nonzero(part_up, up.dtype):  # a part the file does not train (zeros both ways in an export of ours)
            continue
        layers.append(
            Layer(
                target.component,
                module,
                Tensor(down.dtype, np.ascontiguousarray(part_down)),
                Tensor(up.dtype, np.ascontiguousarray(part_up)),
            )
        )
    return layers


def read_layers(data: bytes, spec: BaseModelSpec, limits: AdapterLimits | None = None) -> list[Layer]:
    """A LoRA file's layers in `spec`'s modules, unfused, at scale 1 (checked as `check_adapter` checks, and each
    module's rank against `limits` once fused layers are split: a dense fused layer's parts have its full rank)."""
    limits = limits or AdapterLimits()
    header, tensors = read_file(data)
    result = check_header(header, spec, limits)
    manifest = manifest_for(spec)
    configs = metadata_configs(header.metadata)
    layers = [
        layer
        for planned in result.layers
        for layer in _unfuse(planned, tensors, manifest, _scale(planned, tensors, configs))
    ]
    for layer in layers:
        if (rank := layer.down.shape[0]) > limits.max_rank:
            raise AdapterFileError(
                AdapterProblem.RANK_TOO_LARGE,
                f"rank {rank} ({layer.component}.{layer.module}); at most {limits.max_rank} is taken",
            )
    return layers


def to_diffusers(data: bytes, spec: BaseModelSpec, limits: AdapterLimits | None = None) -> bytes:
    """A LoRA file in any naming (diffusers, peft, kohya; checked as `check_adapter` checks it, within `limits`)
    rewritten in the naming the generator serves: exactly the keys the trainer's `save_lora_weights` writes for
    `spec`'s family, each layer's scale folded into its up weight (float32 arithmetic, stored back in the file's
    dtype): kohya's alpha / rank, or diffusers' `lora_adapter_metadata` (lora_alpha / r and its patterns), which
    is then not kept. A peft file has no alphas in it (they are in its adapter_config.json): alpha = rank is
    assumed. Raises AdapterFileError."""
    tensors: dict[str, Tensor] = {}
    for layer in read_layers(data, spec, limits):
        tensors[diffusers_key(layer.component, layer.module, DOWN)] = layer.down
        tensors[diffusers_key(layer.component, layer.module, UP)] = layer.up
    return write_file(tensors, DIFFUSERS_METADATA)


def _as_f32(tensor: Tensor) -> Tensor:
    return Tensor("F32", tensor.to_float32())


def _fuse(parts: list[Layer | None], outs: list[int]) -> tuple[Tensor, Tensor]:
    """Stack the parts' downs (each padded to the largest rank) and lay their ups block-diagonally: exact. Built in
    the tensors' own storage (zero is all-zero bits in F16, BF16 and F32), so no value is converted."""
    present = [p for p in parts if p is not None]
    dtype = present[0].down.dtype
    if any(p.down.dtype != dtype or p.up.dtype != dtype for p in present):  # parts of mixed dtypes: as float32
        parts = [None if p is None else Layer(p.component, p.module, _as_f32(p.down), _as_f32(p.up)) for p in parts]
        present, dtype = [p for p in parts if p is not None], "F32"
    rank = max(p.down.shape[0] for p in present)
    storage = present[0].down.array.dtype
    down = np.zeros((rank * len(parts), *present[0].down.shape[1:]), dtype=storage)
    up = np.zeros((sum(outs), rank * len(parts)), dtype=storage)
    row = 0
    for j, part in enumerate(parts):
        if part is not None:
            r = part.down.shape[0]
            down[j * rank : j * rank + r] = part.down.array
            up[row : row + outs[j], j * rank : j * rank + r] = part.up.array.reshape(outs[j], r)
        row += outs[j]
    return Tensor(dtype, down), Tensor(dtype, up)


def to_kohya(data: bytes, spec: BaseModelSpec, metadata: KohyaMetadata) -> bytes:
    """A LoRA file (any naming) in kohya-ss naming (`lora_unet_…`, `lora_te…_…`, `.lora_down.weight`,
    `.lora_up.weight`, `.alpha`) with sd-scripts' `ss_*` metadata, as AUTOMATIC1111, Forge and ComfyUI load it.
    Raises AdapterFileError."""
    manifest = manifest_for(spec)
    names = kohya_names(manifest)
    grouped: dict[str, dict[str, Layer]] = {}
    for layer in read_layers(data, spec):
        name = names.export[(layer.component, layer.module)]
        grouped.setdefault(name, {})[layer.module] = layer
    tensors: dict[str, Tensor] = {}
    for name, layers in grouped.items():
        target = names.targets[name]
        if target.fused:
            outs = [(manifest.shape(target.component, m) or (0,))[0] for m in target.modules]
            down, up = _fuse([layers.get(m) for m in target.modules], outs)
        else:
            layer = layers[target.modules[0]]
            down, up = layer.down, layer.up
            if target.swap_halves:
                up = Tensor(up.dtype, _swap_halves(up.array))  # a permutation: in the dtype's own storage
        tensors[kohya_key(name, DOWN)] = down
        tensors[kohya_key(name, UP)] = up
        alpha = np.array(down.shape[0], dtype=np.float32)
        tensors[kohya_key(name, ALPHA)] = Tensor.from_float32(alpha, down.dtype)
    return write_file(tensors, with_hashes(tensors, metadata))
