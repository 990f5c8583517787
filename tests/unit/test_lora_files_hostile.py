"""Malformed and hostile safetensors files: each is refused with an AdapterFileError naming its problem (never
another exception, a 5xx in the API), messages stay small, and writing a file copies its payload once."""

from __future__ import annotations

import json
import struct
import tracemalloc

import numpy as np
import pytest

from infra.base_models import TINY_SD
from infra.lora_files.checks import check_adapter
from infra.lora_files.convert import to_diffusers
from infra.lora_files.errors import NAME_SHOWN, AdapterFileError, AdapterProblem
from infra.lora_files.manifests import all_manifests
from infra.lora_files.safetensors_file import (
    MAX_HEADER_BYTES,
    MAX_TENSORS,
    Tensor,
    header_bytes_needed,
    read_file,
    write_file,
)

MODULE = "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"
KOHYA = "lora_unet_" + MODULE.replace(".", "_")


def _raw(header: dict[str, object] | bytes, data: bytes = b"") -> bytes:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def _kohya(alpha: dict[str, object], alpha_bytes: bytes) -> bytes:
    """A valid rank-4 kohya layer of tiny-sd whose alpha entry is `alpha` (its offsets filled in)."""
    down, up = np.ones((4, 64), np.float32).tobytes(), np.ones((64, 4), np.float32).tobytes()
    end = len(down) + len(up)
    header = {
        f"{KOHYA}.lora_down.weight": {"dtype": "F32", "shape": [4, 64], "data_offsets": [0, len(down)]},
        f"{KOHYA}.lora_up.weight": {"dtype": "F32", "shape": [64, 4], "data_offsets": [len(down), end]},
        f"{KOHYA}.alpha": {**alpha, "data_offsets": [end, end + len(alpha_bytes)]},
    }
    return _raw(header, down + up + alpha_bytes)


def _refused(data: bytes) -> AdapterFileError:
    """The error both the header check and the conversion raise for `data` (the same problem from each)."""
    with pytest.raises(AdapterFileError) as checked:
        check_adapter(data, TINY_SD, file_size=len(data))
    with pytest.raises(AdapterFileError) as converted:
        to_diffusers(data, TINY_SD)
    assert checked.value.problem is converted.value.problem, (checked.value.message, converted.value.message)
    return checked.value


@pytest.mark.parametrize(
    ("data", "problem", "words"),
    [
        # numpy's int64 product of [2**32, 2**32] wraps to 0, which matched the alpha's 0 bytes
        (_kohya({"dtype": "F32", "shape": [2**32, 2**32]}, b""), AdapterProblem.NOT_SAFETENSORS, "0 bytes for"),
        (_kohya({"dtype": "F32", "shape": [2**70]}, b""), AdapterProblem.NOT_SAFETENSORS, "malformed"),
        (_kohya({"dtype": "F32", "shape": [1] * 9}, b"\0" * 4), AdapterProblem.NOT_SAFETENSORS, "malformed"),
        (_kohya({"dtype": "F32", "shape": [True]}, b"\0" * 4), AdapterProblem.NOT_SAFETENSORS, "malformed"),
        (_kohya({"dtype": "F32", "shape": [0]}, b""), AdapterProblem.BAD_ALPHA, "one value"),
        (_kohya({"dtype": "F32", "shape": [2]}, b"\0" * 8), AdapterProblem.BAD_ALPHA, "shape [2]"),
        (_raw(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"), AdapterProblem.NOT_SAFETENSORS, "nests"),
        (_raw(b'{"a": 1' + b"0" * 5000 + b"}"), AdapterProblem.NOT_SAFETENSORS, "not JSON"),  # over int digits
        (
            _raw({"x": {"dtype": "F32", "shape": [1], "data_offsets": [False, True]}}, b"\0" * 4),
            AdapterProblem.NOT_SAFETENSORS,
            "malformed",
        ),
    ],
    ids=[
        "shape-int64-wrap",
        "shape-over-int64",
        "rank-9-tensor",
        "bool-dim",
        "alpha-empty",
        "alpha-two-values",
        "json-nested-100k",
        "json-int-digits",
        "bool-offsets",
    ],
)
def test_malformed_entries_are_refused_by_name(data: bytes, problem: AdapterProblem, words: str) -> None:
    error = _refused(data)
    assert error.problem is problem and words in error.message, error.message


def test_a_rank_0_layer_is_refused() -> None:
    empty = {
        f"{KOHYA}.lora_down.weight": Tensor("F32", np.zeros((0, 64), np.float32)),
        f"{KOHYA}.lora_up.weight": Tensor("F32", np.zeros((64, 0), np.float32)),
    }
    error = _refused(write_file(empty))
    assert error.problem is AdapterProblem.SHAPE_MISMATCH and "rank 0" in error.message


def test_messages_quote_long_names_cut() -> None:
    tensors = {
        f"{KOHYA}.lora_down.weight": Tensor("F32", np.ones((4, 64), np.float32)),
        f"{KOHYA}.lora_up.weight": Tensor("F32", np.ones((64, 4), np.float32)),
    }
    for i in range(3):
        tensors["x" * 300_000 + str(i)] = Tensor("F32", np.zeros((0,), np.float32))
    error = _refused(write_file(tensors))
    assert error.problem is AdapterProblem.UNKNOWN_LAYERS
    assert len(error.message) < 3 * NAME_SHOWN + 200 and "x" * 50 in error.message
    long_dtype = _raw({"y" * 10_000: {"dtype": "Z" * 10_000, "shape": [], "data_offsets": [0, 0]}})
    error = _refused(long_dtype)
    assert error.problem is AdapterProblem.UNSUPPORTED_DTYPE and len(error.message) < 2 * NAME_SHOWN + 100


def test_a_header_over_the_limit_is_refused_before_it_is_parsed() -> None:
    prefix = struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{"
    with pytest.raises(AdapterFileError) as error:
        header_bytes_needed(prefix)
    assert error.value.problem is AdapterProblem.TOO_LARGE and "header" in error.value.message
    with pytest.raises(AdapterFileError) as error:  # past safetensors' own limit: not a safetensors file
        header_bytes_needed(struct.pack("<Q", 2**40))
    assert error.value.problem is AdapterProblem.NOT_SAFETENSORS


def test_more_tensors_than_any_lora_has_are_refused() -> None:
    # The largest manifest's every layer (down, up, alpha) fits well within the limit.
    assert max(3 * sum(len(m) for m in manifest.layers.values()) for manifest in all_manifests()) * 5 < MAX_TENSORS
    entries = {f"t{i}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]} for i in range(MAX_TENSORS + 1)}
    data = _raw(json.dumps(entries, separators=(",", ":")).encode())
    assert len(data) < MAX_HEADER_BYTES
    error = _refused(data)
    assert error.problem is AdapterProblem.TOO_LARGE and str(MAX_TENSORS) in error.message


def test_writing_copies_the_payload_once() -> None:
    values = Tensor("F32", np.ones((1024, 4096), np.float32))  # 16 MiB
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        data = write_file({"a.lora_A.weight": values})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(data) > values.array.nbytes
    assert peak < 1.2 * len(data), f"peak {peak} for a {len(data)}-byte file"
    _, back = read_file(data)
    np.testing.assert_array_equal(back["a.lora_A.weight"].array, values.array)
    scalar = read_file(write_file({"a.alpha": Tensor("F16", np.array(2.0, np.float16))}))[1]["a.alpha"]
    assert scalar.shape == () and float(scalar.array) == 2.0
