"""Reading and writing safetensors files with the standard library and numpy alone.

The `safetensors` package is not used here on purpose: it is not in the Lambda zip (the API checks imports and
converts downloads in Lambda, infra/deploy/lambda_package.py), and its numpy API cannot hold bfloat16 (numpy has no
such dtype). So a BF16 tensor is kept as its raw uint16 bits with its dtype tag (`Tensor`), and turned into float32
by a bit shift only where arithmetic is needed (`Tensor.to_float32`).

The format: 8 bytes little-endian header length N, N bytes of JSON (`{name: {dtype, shape, data_offsets}}` and an
optional `__metadata__` of str -> str), then the tensors' bytes, back to back (offsets relative to the data start).
`header_bytes_needed` tells how many leading bytes a header takes, so a caller can range-GET only those of a big S3
object and check it with `read_header(prefix, file_size=...)`.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from infra.lora_files.errors import AdapterFileError, AdapterProblem, shown

# Tensor dtypes a LoRA file may hold, and their numpy storage (BF16: the raw bits).
DTYPES: dict[str, np.dtype] = {
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "F32": np.dtype("<f4"),
}
# A LoRA's header is a few hundred KB at most (SDXL's every layer: ~3.2k keys, ~0.4 MB), so a bigger one is refused
# before its JSON is parsed (a parse costs memory and seconds); past safetensors' own limit (100 MB) the length
# field is taken for garbage: not a safetensors file at all.
MAX_HEADER_BYTES = 8 * 1024 * 1024
_SAFETENSORS_MAX_HEADER = 100 * 1024 * 1024
# The largest manifest (SDXL, 1059 layers) has ~3.2k keys at 3 a layer: six times that is still a LoRA.
MAX_TENSORS = 20_000
# No LoRA weight has a dimension near this; capping each keeps element counts small Python ints that numpy takes.
MAX_DIM = 2**40
_MAX_RANK_OF_TENSOR = 8
_PREFIX = 8
# The order safetensors writes tensors in: larger dtypes first (its Rust `Dtype` order), then by name, so the bytes
# this module writes match `safetensors.torch.save` for the same tensors and metadata.
_DTYPE_RANK = {"F32": 0, "BF16": 1, "F16": 2}


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's entry in a header: its dtype, shape and byte range within the data section."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def count(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)  # Python ints: numpy's int64 product wraps ([2**32, 2**32] -> 0)


@dataclass(frozen=True)
class SafetensorsHeader:
    """A parsed, checked header: the tensors by name, the `__metadata__`, and where the data section starts."""

    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]
    data_start: int  # 8 + the JSON's length

    @property
    def file_size(self) -> int:
        """The size a complete file with this header has."""
        return self.data_start + max((t.end for t in self.tensors.values()), default=0)


@dataclass(frozen=True)
class Tensor:
    """A tensor's values: `array` in the dtype's numpy storage (float16, float32, or BF16's raw uint16 bits)."""

    dtype: str
    array: np.ndarray = field(repr=False)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape)

    def to_float32(self) -> np.ndarray:
        """The values as float32 (exact for all three dtypes; BF16 is the top half of a float32)."""
        if self.dtype == "BF16":
            return (self.array.astype(np.uint32) << 16).view(np.float32)
        return self.array.astype(np.float32)

    @classmethod
    def from_float32(cls, values: np.ndarray, dtype: str) -> Tensor:
        """Values computed in float32, stored back in `dtype` (BF16 rounded to nearest even, as torch rounds)."""
        values = np.array(values, dtype=np.float32, order="C")  # keeps a 0-d alpha 0-d
        if dtype == "BF16":
            # Flat, so a 0-d alpha stays an array; only NaNs' bit patterns can carry out of 32 bits, and they are
            # replaced.
            bits = values.reshape(-1).view(np.uint32)
            rounded = ((bits + ((bits >> 16) & 1) + np.uint32(0x7FFF)) >> 16).astype(np.uint16)
            nan = np.isnan(values.reshape(-1))
            if nan.any():
                rounded[nan] = 0x7FC0
            return cls("BF16", rounded.reshape(values.shape))
        if dtype not in DTYPES:
            raise AdapterFileError(AdapterProblem.UNSUPPORTED_DTYPE, f"cannot store tensors as {dtype}")
        return cls(dtype, values.astype(DTYPES[dtype]))


def _looks_like(prefix: bytes) -> str | None:
    """What a file that is not safetensors seems to be, from its first bytes (None: nothing recognisable)."""
    if prefix[:1] == b"\x80" and prefix[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "a Python pickle (a .ckpt/.pt/.bin checkpoint)"
    if prefix.startswith(b"PK\x03\x04"):
        return "a zip archive (torch.save's checkpoint format)"
    if prefix.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer, not the file itself"
    if prefix.startswith(b"GGUF"):
        return "a GGUF file"
    if prefix.lstrip()[:1] in (b"<",):
        return "an HTML or XML document"
    if prefix.lstrip()[:1] in (b"{", b"["):
        return "a JSON document"
    return None


def _not_safetensors(prefix: bytes, why: str) -> AdapterFileError:
    seems = _looks_like(prefix)
    detail = f"it looks like {seems}" if seems else why
    return AdapterFileError(AdapterProblem.NOT_SAFETENSORS, f"not a safetensors file: {detail}")


def header_bytes_needed(prefix: bytes) -> int:
    """How many leading bytes of the file hold its header (8 + the JSON's length), from at least its first 8."""
    if len(prefix) < _PREFIX:
        raise AdapterFileError(AdapterProblem.TRUNCATED, f"the file has {len(prefix)} bytes: too short for a header")
    (length,) = struct.unpack("<Q", prefix[:_PREFIX])
    if length == 0 or length > _SAFETENSORS_MAX_HEADER:
        raise _not_safetensors(prefix, f"its header length field says {length} bytes")
    if length > MAX_HEADER_BYTES:
        raise AdapterFileError(
            AdapterProblem.TOO_LARGE,
            f"its header has {length} bytes; at most {MAX_HEADER_BYTES} are taken (a LoRA's is a few hundred KB)",
        )
    return _PREFIX + length


def read_header(data: bytes, file_size: int | None = None) -> SafetensorsHeader:
    """Parse and check the header at the start of `data` (the whole file, or only its first
    `header_bytes_needed` bytes with the full `file_size` given): tensors in F16/BF16/F32 only, each one's bytes
    matching its shape, offsets contiguous from 0, and the data section within the file."""
    needed = header_bytes_needed(data)
    size = len(data) if file_size is None else file_size
    if size < needed or len(data) < needed:
        raise AdapterFileError(
            AdapterProblem.TRUNCATED, f"the header needs {needed} bytes and the file has {min(size, len(data))}"
        )
    raw = data[_PREFIX:needed]
    try:
        parsed = json.loads(raw.decode("utf-8"))
    except RecursionError:  # the C parser's guard against deep nesting; no header of tensors nests past 3
        raise _not_safetensors(data, "its header nests too deeply") from None
    except ValueError:  # not UTF-8, not JSON, or an integer over Python's digit limit
        raise _not_safetensors(data, "its header is not JSON") from None
    if not isinstance(parsed, dict):
        raise _not_safetensors(data, "its header is not a JSON object")
    metadata = parsed.pop("__metadata__", None) or {}
    if len(parsed) > MAX_TENSORS:
        raise AdapterFileError(
            AdapterProblem.TOO_LARGE, f"its header lists {len(parsed)} tensors; at most {MAX_TENSORS} are taken"
        )
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise _not_safetensors(data, "its __metadata__ is not a map of strings")
    tensors = [_tensor_info(name, entry, data) for name, entry in parsed.items()]
    position = 0
    for info in sorted(tensors, key=lambda t: (t.start, t.end)):
        if info.start != position:
            raise _not_safetensors(data, f"tensor {shown(info.name)} starts at byte {info.start}, expected {position}")
        position = info.end
    header = SafetensorsHeader({t.name: t for t in tensors}, dict(metadata), needed)
    if header.file_size > size:
        raise AdapterFileError(
            AdapterProblem.TRUNCATED, f"the header promises {header.file_size} bytes and the file has {size}"
        )
    return header


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON's true is a Python int


def _tensor_info(name: str, entry: object, data: bytes) -> TensorInfo:
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= entry.keys():
        raise _not_safetensors(data, f"entry {shown(name)} is not a tensor")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    valid_shape = (
        isinstance(shape, list)
        and len(shape) <= _MAX_RANK_OF_TENSOR
        and all(_is_int(n) and 0 <= n < MAX_DIM for n in shape)
    )
    valid_offsets = isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(n) for n in offsets)
    if not isinstance(dtype, str) or not valid_shape or not valid_offsets or not 0 <= offsets[0] <= offsets[1]:
        raise _not_safetensors(data, f"entry {shown(name)} is malformed")
    if dtype not in DTYPES:
        raise AdapterFileError(
            AdapterProblem.UNSUPPORTED_DTYPE,
            f"tensor {shown(name)} is {shown(dtype)}; LoRA files must be F16, BF16 or F32",
        )
    info = TensorInfo(name, dtype, tuple(shape), offsets[0], offsets[1])
    if (info.end - info.start) != info.count * DTYPES[dtype].itemsize:
        raise _not_safetensors(
            data, f"tensor {shown(name)} has {info.end - info.start} bytes for shape {list(info.shape)}"
        )
    return info


def read_file(data: bytes) -> tuple[SafetensorsHeader, dict[str, Tensor]]:
    """The header and every tensor of a whole file (arrays are read-only views into `data`)."""
    header = read_header(data)
    tensors = {
        name: Tensor(
            info.dtype,
            np.frombuffer(
                data, dtype=DTYPES[info.dtype], count=info.count, offset=header.data_start + info.start
            ).reshape(info.shape),
        )
        for name, info in header.tensors.items()
    }
    return header, tensors


def write_file(tensors: Mapping[str, Tensor], metadata: Mapping[str, str] | None = None) -> bytes:
    """A safetensors file: deterministic bytes for the same tensors and metadata (metadata keys sorted), laid
    out as `safetensors` lays them out (larger dtypes first, then by name; header padded with spaces to 8)."""
    order = sorted(tensors, key=lambda name: (_DTYPE_RANK[tensors[name].dtype], name))
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {key: str(metadata[key]) for key in sorted(metadata)}
    # Views of the arrays' own memory (a copy only where one is not C-contiguous little-endian): the file's
    # bytes are then written once, by the join.
    chunks: list[memoryview] = []
    position = 0
    for name in order:
        tensor = tensors[name]
        if tensor.dtype not in DTYPES:
            raise AdapterFileError(AdapterProblem.UNSUPPORTED_DTYPE, f"cannot store tensors as {tensor.dtype}")
        raw = memoryview(np.ascontiguousarray(tensor.array, dtype=DTYPES[tensor.dtype]).reshape(-1)).cast("B")
        header[name] = {
            "dtype": tensor.dtype,
            "shape": list(tensor.shape),
            "data_offsets": [position, position + raw.nbytes],
        }
        chunks.append(raw)
        position += raw.nbytes
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return b"".join([struct.pack("<Q", len(text)), text, *chunks])
