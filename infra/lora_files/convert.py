"""Converting LoRA files between the namings: to what the service serves (diffusers) and to kohya's.

Both go through one form: the file's layers unfused, one (down, up) pair per module, with kohya's alpha / rank
folded into the up weight (float32 arithmetic, stored back in the file's dtype; a scale of 1, what every file the
service writes has, changes no bit). The diffusers form needs no alphas: the generator loads a layer at
alpha = rank. The kohya form writes alpha = rank (scale 1), as a scalar in the layer's dtype (sd-scripts converts
its alphas to the save precision with the weights), and fuses FLUX's q, k, v (and single blocks' MLP input) as
`naming.py` describes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from infra.base_models import BaseModelSpec
from infra.lora_files.checks import check_header
from infra.lora_files.kohya_metadata import KohyaMetadata, with_hashes
from infra.lora_files.layout import PlannedLayer
from infra.lora_files.manifests import Manifest, manifest_for
from infra.lora_files.naming import ALPHA, DOWN, UP, diffusers_key, kohya_key, kohya_names
from infra.lora_files.safetensors_file import Tensor, read_file, write_file

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


def _unfuse(planned: PlannedLayer, tensors: dict[str, Tensor], manifest: Manifest) -> list[Layer]:
    down, up = tensors[planned.down], tensors[planned.up]
    rank = down.shape[0]
    alpha = float(tensors[planned.alpha].to_float32().reshape(-1)[0]) if planned.alpha else float(rank)
    scale = np.float32(alpha) / np.float32(rank)
    up_values = up.to_float32()
    if scale != 1:
        up_values = up_values * scale
    if planned.target.swap_halves:
        up_values = _swap_halves(up_values)
    target = planned.target
    if not target.fused:
        up_tensor = up if scale == 1 and not target.swap_halves else Tensor.from_float32(up_values, up.dtype)
        return [Layer(target.component, target.modules[0], down, up_tensor)]
    outs = [(manifest.shape(target.component, module) or (0,))[0] for module in target.modules]
    starts = np.cumsum([0, *outs])
    parts = len(target.modules)
    down_values = down.to_float32()
    part_rank = rank // parts
    # Block-diagonal (what `to_kohya` writes): each part's own rows of the down weight; else all of them.
    sparse = rank % parts == 0 and all(
        not up_values[starts[j] : starts[j + 1], k * part_rank : (k + 1) * part_rank].any()
        for j in range(parts)
        for k in range(parts)
        if j != k
    )
    layers = []
    for j, module in enumerate(target.modules):
        rows = up_values[starts[j] : starts[j + 1]]
        if sparse:
            part_down, part_up = (
                down_values[j * part_rank : (j + 1) * part_rank],
                rows[:, j * part_rank : (j + 1) * part_rank],
            )
        else:
            part_down, part_up = down_values, rows
        if not part_up.any():  # a part the file does not train (zeros both ways in an export of ours)
            continue
        layers.append(
            Layer(
                target.component,
                module,
                Tensor.from_float32(part_down, down.dtype),
                Tensor.from_float32(part_up, up.dtype),
            )
        )
    return layers


def read_layers(data: bytes, spec: BaseModelSpec) -> list[Layer]:
    """A LoRA file's layers in `spec`'s modules, unfused, at scale 1 (checked as `check_adapter` checks)."""
    header, tensors = read_file(data)
    result = check_header(header, spec)
    manifest = manifest_for(spec)
    return [layer for planned in result.layers for layer in _unfuse(planned, tensors, manifest)]


def to_diffusers(data: bytes, spec: BaseModelSpec) -> bytes:
    """A LoRA file in any naming (diffusers, peft, kohya; checked as `check_adapter` checks it) rewritten in the
    naming the generator serves: exactly the keys the trainer's `save_lora_weights` writes for `spec`'s family,
    kohya's alphas folded into the up weights (float32 arithmetic, stored back in the file's dtype). Raises
    AdapterFileError."""
    tensors: dict[str, Tensor] = {}
    for layer in read_layers(data, spec):
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
                up = Tensor.from_float32(_swap_halves(up.to_float32()), up.dtype)
        tensors[kohya_key(name, DOWN)] = down
        tensors[kohya_key(name, UP)] = up
        alpha = np.array(down.shape[0], dtype=np.float32)
        tensors[kohya_key(name, ALPHA)] = Tensor.from_float32(alpha, down.dtype)
    return write_file(tensors, with_hashes(tensors, metadata))
