"""The torch-free safetensors reader and writer against the `safetensors` package itself (tests may use torch)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from infra.lora_files.errors import AdapterFileError, AdapterProblem
from infra.lora_files.safetensors_file import Tensor, header_bytes_needed, read_file, read_header, write_file

TORCH_DTYPES = {"F16": torch.float16, "BF16": torch.bfloat16, "F32": torch.float32}


def _torch_tensors(dtype: torch.dtype) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        "b.lora_A.weight": (torch.randn(4, 12, generator=generator) * 3).to(dtype),
        "a.lora_B.weight": torch.randn(7, 4, 1, 1, generator=generator).to(dtype),
        "a.alpha": torch.tensor(4.0).to(dtype),
    }


def _as_numpy(tensor: torch.Tensor) -> Tensor:
    name = {v: k for k, v in TORCH_DTYPES.items()}[tensor.dtype]
    if tensor.dtype == torch.bfloat16:
        return Tensor(name, tensor.view(torch.int16).numpy().view(np.uint16))
    return Tensor(name, tensor.numpy())


@pytest.mark.parametrize("dtype", sorted(TORCH_DTYPES))
def test_reads_what_safetensors_writes(dtype: str) -> None:
    original = _torch_tensors(TORCH_DTYPES[dtype])
    data = st_save(original, metadata={"ss_network_dim": "4"})
    header, tensors = read_file(data)
    assert header.metadata == {"ss_network_dim": "4"}
    assert header.file_size == len(data)
    for name, tensor in original.items():
        assert tensors[name].dtype == dtype and tensors[name].shape == tuple(tensor.shape)
        np.testing.assert_array_equal(tensors[name].to_float32(), tensor.float().numpy())


@pytest.mark.parametrize("dtype", sorted(TORCH_DTYPES))
def test_writes_the_bytes_safetensors_writes(dtype: str) -> None:
    original = _torch_tensors(TORCH_DTYPES[dtype])
    mine = write_file({name: _as_numpy(t) for name, t in original.items()}, {"ss_network_dim": "4"})
    assert mine == st_save(original, metadata={"ss_network_dim": "4"})
    back = st_load(mine)
    assert all(torch.equal(back[name], tensor) for name, tensor in original.items())


def test_mixed_dtypes_and_many_metadata_keys_round_trip() -> None:
    tensors = {
        "x": Tensor("F32", np.arange(6, dtype=np.float32).reshape(2, 3)),
        "y": Tensor.from_float32(np.array([1.5, -2.25, 3.0e38], dtype=np.float32), "BF16"),
        "z": Tensor("F16", np.array([0.5], dtype=np.float16)),
    }
    metadata = {"b": "2", "a": "1", "ü": "ß"}
    data = write_file(tensors, metadata)
    assert data == write_file(dict(reversed(list(tensors.items()))), dict(reversed(list(metadata.items()))))
    header, back = read_file(data)
    assert header.metadata == metadata
    loaded = st_load(data)
    for name, tensor in tensors.items():
        np.testing.assert_array_equal(back[name].to_float32(), tensor.to_float32())
        np.testing.assert_array_equal(loaded[name].float().numpy(), tensor.to_float32())


def test_bf16_rounding_matches_torch() -> None:
    values = torch.randn(1000, generator=torch.Generator().manual_seed(1)) * 1e3
    values[:4] = torch.tensor([float("nan"), float("inf"), -float("inf"), 3.4e38])
    ours = Tensor.from_float32(values.numpy(), "BF16").array
    theirs = values.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
    np.testing.assert_array_equal(ours[1:], theirs[1:])
    assert np.isnan(Tensor("BF16", ours[:1]).to_float32()[0])  # a NaN stays a NaN (torch keeps its payload bits)


def test_header_alone_is_enough_with_the_file_size() -> None:
    data = st_save(_torch_tensors(torch.float16))
    needed = header_bytes_needed(data[:8])
    header = read_header(data[:needed], file_size=len(data))
    assert set(header.tensors) == {"a.alpha", "a.lora_B.weight", "b.lora_A.weight"}
    with pytest.raises(AdapterFileError) as error:
        read_header(data[:needed], file_size=len(data) - 1)
    assert error.value.problem is AdapterProblem.TRUNCATED


@pytest.mark.parametrize("cut", [3, 20, -1])
def test_truncated_files_are_refused(cut: int) -> None:
    data = st_save(_torch_tensors(torch.float32))
    with pytest.raises(AdapterFileError) as error:
        read_file(data[:cut])
    assert error.value.problem is AdapterProblem.TRUNCATED


def test_a_torch_pickle_is_named() -> None:
    buffer = io.BytesIO()
    torch.save(_torch_tensors(torch.float32), buffer)
    with pytest.raises(AdapterFileError) as error:
        read_header(buffer.getvalue())
    assert error.value.problem is AdapterProblem.NOT_SAFETENSORS
    assert "zip archive" in error.value.message
    buffer = io.BytesIO()
    torch.save(_torch_tensors(torch.float32), buffer, _use_new_zipfile_serialization=False)
    with pytest.raises(AdapterFileError) as error:
        read_header(buffer.getvalue())
    assert "pickle" in error.value.message


@pytest.mark.parametrize(
    "data",
    [
        b"<html><body>Not found</body></html>",
        b"\x00" * 64,
        b"\xff" * 64,
        b"version https://git-lfs.github.com/spec/v1\n",
    ],
)
def test_garbage_is_not_safetensors(data: bytes) -> None:
    with pytest.raises(AdapterFileError) as error:
        read_header(data)
    assert error.value.problem is AdapterProblem.NOT_SAFETENSORS


def _with_header(header: bytes, data: bytes = b"") -> bytes:
    return len(header).to_bytes(8, "little") + header + data


@pytest.mark.parametrize(
    "header",
    [
        b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}',  # a gap before the first tensor
        b'{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}',  # bytes do not match the shape
        b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
        b'{"a":[1,2]}',
        b"[1, 2]",
        b'{"__metadata__":{"k":1}}',
    ],
)
def test_inconsistent_headers_are_refused(header: bytes) -> None:
    with pytest.raises(AdapterFileError) as error:
        read_file(_with_header(header, b"\x00" * 16))
    assert error.value.problem is AdapterProblem.NOT_SAFETENSORS


def test_other_dtypes_are_refused_by_name() -> None:
    data = st_save({"w": torch.zeros(2, dtype=torch.float64)})
    with pytest.raises(AdapterFileError) as error:
        read_header(data)
    assert error.value.problem is AdapterProblem.UNSUPPORTED_DTYPE and "F64" in error.value.message
