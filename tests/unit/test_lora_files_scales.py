"""Layer scales: kohya's alpha tensors and diffusers' `lora_adapter_metadata` folded into the served up weights,
insane alphas refused, FLUX's fused layers counted per part against the rank limit, and a scale-1 conversion that
converts no value (numpy only: what the API runs)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from infra.base_models import TINY_FLUX, TINY_SD
from infra.lora_files.checks import AdapterLimits, check_adapter
from infra.lora_files.convert import to_diffusers, to_kohya
from infra.lora_files.errors import AdapterFileError, AdapterProblem
from infra.lora_files.manifests import manifest_for
from infra.lora_files.safetensors_file import Tensor, read_file, write_file
from infra.lora_files.scales import METADATA_KEY
from tests.unit.test_lora_files_naming import diffusers_file, meta, pair

UNET = manifest_for(TINY_SD).layers["unet"]
ATTN = "down_blocks.1.attentions.0.transformer_blocks.0.attn1"
Q, K = f"{ATTN}.to_q", f"{ATTN}.to_k"
KOHYA_Q = "lora_unet_" + Q.replace(".", "_")


def _diffusers(
    ranks: dict[str, int], config: dict[str, object] | None, dtype: str = "F32", prefix: str = "unet."
) -> tuple[bytes, dict[str, Tensor]]:
    """A diffusers-named file (peft's bare naming with `prefix=""`) of `ranks`' modules and `config` as its
    `lora_adapter_metadata` (unprefixed when `prefix` is empty, as `save_lora_adapter` writes it)."""
    tensors: dict[str, Tensor] = {}
    for module, rank in ranks.items():
        down, up = pair(UNET[module], rank=rank, dtype=dtype)
        tensors[f"{prefix}{module}.lora_A.weight"] = down
        tensors[f"{prefix}{module}.lora_B.weight"] = up
    metadata = {"format": "pt"}
    if config is not None:
        component = prefix.rstrip(".")
        keys = {(f"{component}.{k}" if component else k): v for k, v in config.items()}
        metadata[METADATA_KEY] = json.dumps(keys, indent=2, sort_keys=True)
    return write_file(tensors, metadata), tensors


def _served_scale(data: bytes, original: dict[str, Tensor], module: str, prefix: str = "unet.") -> float:
    header, served = read_file(to_diffusers(data, TINY_SD))
    assert header.metadata == {"format": "pt"}  # the scale is in the weights now, the metadata not kept
    down, up = served[f"unet.{module}.lora_A.weight"], served[f"unet.{module}.lora_B.weight"]
    np.testing.assert_array_equal(down.array, original[f"{prefix}{module}.lora_A.weight"].array)
    ratio = up.to_float32() / original[f"{prefix}{module}.lora_B.weight"].to_float32()
    assert np.ptp(ratio) < 1e-2 * abs(ratio.flat[0])  # one scale for the whole layer
    return float(ratio.flat[0])


@pytest.mark.parametrize("dtype", ["F32", "BF16"])
def test_diffusers_metadata_alpha_is_folded(dtype: str) -> None:
    data, original = _diffusers({Q: 4, K: 4}, {"r": 4, "lora_alpha": 1, "target_modules": ["to_q", "to_k"]}, dtype)
    assert _served_scale(data, original, Q) == 0.25
    _, served = read_file(to_diffusers(data, TINY_SD))
    folded = Tensor.from_float32(original[f"unet.{Q}.lora_B.weight"].to_float32() * np.float32(0.25), dtype)
    np.testing.assert_array_equal(served[f"unet.{Q}.lora_B.weight"].array, folded.array)


def test_diffusers_metadata_patterns_and_rslora() -> None:
    config = {"r": 4, "lora_alpha": 2, "alpha_pattern": {"to_q": 16}, "rank_pattern": {"attn1.to_k": 2}}
    data, original = _diffusers({Q: 4, K: 2}, config)
    assert _served_scale(data, original, Q) == 4.0  # its alpha_pattern's 16 / r 4
    assert _served_scale(data, original, K) == 1.0  # lora_alpha 2 / its rank_pattern's 2
    data, original = _diffusers({Q: 4}, {"r": 4, "lora_alpha": 3, "use_rslora": True})
    assert _served_scale(data, original, Q) == pytest.approx(3 / math.sqrt(4), rel=1e-6)
    # save_lora_adapter's form: peft's bare keys, the config unprefixed
    data, original = _diffusers({Q: 4}, {"r": 4, "lora_alpha": 8}, prefix="")
    assert _served_scale(data, original, Q, prefix="") == 2.0
    data, original = _diffusers({Q: 4}, None)  # no metadata (a peft file): alpha = rank
    assert to_diffusers(data, TINY_SD) == write_file(original, {"format": "pt"})


@pytest.mark.parametrize(
    ("config", "problem", "words"),
    [
        ({"r": 8, "lora_alpha": 8}, AdapterProblem.SHAPE_MISMATCH, "says rank 8"),
        ({"r": 4, "lora_alpha": -1}, AdapterProblem.BAD_ALPHA, "alpha -1"),
        ({"r": 4, "lora_alpha": 1e9}, AdapterProblem.BAD_ALPHA, "at most"),
        ({"r": 0, "lora_alpha": 1}, AdapterProblem.BAD_ALPHA, "not a rank"),
        ({"r": True, "lora_alpha": 1}, AdapterProblem.BAD_ALPHA, "not a rank"),
        ({"r": 4, "lora_alpha": "4"}, AdapterProblem.BAD_ALPHA, "not a number"),
        ({"r": 4, "lora_alpha": 4, "alpha_pattern": {"(a+)+$": 4}}, AdapterProblem.BAD_ALPHA, "regex"),
        ({"r": 4, "lora_alpha": 4, "rank_pattern": {"to_q": 2.5}}, AdapterProblem.BAD_ALPHA, "not a rank"),
        ({"r": 4, "lora_alpha": 4, "use_rslora": "yes"}, AdapterProblem.BAD_ALPHA, "use_rslora"),
    ],
)
def test_bad_diffusers_metadata_is_refused(config: dict[str, object], problem: AdapterProblem, words: str) -> None:
    data, _ = _diffusers({Q: 4}, config)
    with pytest.raises(AdapterFileError) as error:
        to_diffusers(data, TINY_SD)
    assert error.value.problem is problem and words in error.value.message, error.value.message


def test_metadata_that_is_not_json_is_refused() -> None:
    down, up = pair(UNET[Q])
    tensors = {f"unet.{Q}.lora_A.weight": down, f"unet.{Q}.lora_B.weight": up}
    for raw in ("{not json", "[1, 2]", "[" * 100_000):
        with pytest.raises(AdapterFileError) as error:
            to_diffusers(write_file(tensors, {METADATA_KEY: raw}), TINY_SD)
        assert error.value.problem is AdapterProblem.BAD_ALPHA


def _kohya_q(alpha: float, rank: int = 4) -> bytes:
    down, up = pair(UNET[Q], rank=rank)
    value = Tensor("F32", np.array(alpha, dtype=np.float32))
    return write_file({f"{KOHYA_Q}.lora_down.weight": down, f"{KOHYA_Q}.lora_up.weight": up, f"{KOHYA_Q}.alpha": value})


@pytest.mark.parametrize("alpha", [float("nan"), float("inf"), -float("inf"), -4.0, 0.0, 4e4 + 8])
def test_insane_kohya_alphas_are_refused(alpha: float) -> None:
    with pytest.raises(AdapterFileError) as error:
        to_diffusers(_kohya_q(alpha), TINY_SD)
    assert error.value.problem is AdapterProblem.BAD_ALPHA and Q in error.value.message


def test_alphas_up_to_ten_thousand_times_the_rank_are_taken() -> None:
    _, served = read_file(to_diffusers(_kohya_q(4e4), TINY_SD))
    assert np.isfinite(served[f"unet.{Q}.lora_B.weight"].to_float32()).all()
    _, served = read_file(to_diffusers(_kohya_q(1e-3), TINY_SD))
    assert np.isfinite(served[f"unet.{Q}.lora_B.weight"].to_float32()).all()


def test_a_flux_kohya_export_counts_each_parts_rank() -> None:
    """A rank-65 adapter's export fuses q, k, v to 195 rows and a single block's linear1 to 260 (block-diagonal):
    it imports back under a limit of 256, as rank 65, to the same file."""
    original = diffusers_file(manifest_for(TINY_FLUX), rank=65)
    kohya = to_kohya(original, TINY_FLUX, meta(TINY_FLUX, 65))
    assert read_file(kohya)[1]["lora_unet_single_blocks_0_linear1.lora_down.weight"].shape[0] == 260
    assert check_adapter(kohya, TINY_FLUX, AdapterLimits(max_rank=256)).rank == 65
    assert to_diffusers(kohya, TINY_FLUX, AdapterLimits(max_rank=256)) == original
    with pytest.raises(AdapterFileError) as error:
        check_adapter(kohya, TINY_FLUX, AdapterLimits(max_rank=64))
    assert error.value.problem is AdapterProblem.RANK_TOO_LARGE


def test_a_dense_fused_flux_layer_has_its_full_rank() -> None:
    """sd-scripts' fused layers are dense: every part has the whole rank, which the conversion counts (the header
    alone cannot tell it from a block-diagonal one)."""
    width = manifest_for(TINY_FLUX).layers["transformer"]["single_transformer_blocks.0.attn.to_q"][1]
    out = sum(
        manifest_for(TINY_FLUX).layers["transformer"][f"single_transformer_blocks.0.{m}"][0]
        for m in ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp")
    )
    name = "lora_unet_single_blocks_0_linear1"
    rng = np.random.default_rng(1)
    data = write_file(
        {
            f"{name}.lora_down.weight": Tensor("F32", rng.standard_normal((260, width)).astype(np.float32)),
            f"{name}.lora_up.weight": Tensor("F32", rng.standard_normal((out, 260)).astype(np.float32)),
        }
    )
    check_adapter(data, TINY_FLUX, AdapterLimits(max_rank=256))  # 260 rows over 4 parts: maybe 65 each
    with pytest.raises(AdapterFileError) as error:
        to_diffusers(data, TINY_FLUX, AdapterLimits(max_rank=256))
    assert error.value.problem is AdapterProblem.RANK_TOO_LARGE and "rank 260" in error.value.message


@pytest.mark.parametrize("dtype", ["F32", "F16", "BF16"])
def test_a_scale_1_conversion_converts_no_value(monkeypatch: pytest.MonkeyPatch, dtype: str) -> None:
    """Every file the service writes has scale 1: fused layers split and FLUX's swapped modulation come back by
    moving the dtype's own storage, without a float32 copy of any weight."""
    original = diffusers_file(manifest_for(TINY_FLUX), dtype=dtype)
    to_float32 = Tensor.to_float32

    def no_float32(self: Tensor) -> np.ndarray:
        assert self.array.size == 1, f"a {self.dtype} weight of shape {self.shape} converted to float32"
        return to_float32(self)  # an alpha, read as a number

    monkeypatch.setattr(Tensor, "to_float32", no_float32)
    kohya = to_kohya(original, TINY_FLUX, meta(TINY_FLUX))
    assert to_diffusers(kohya, TINY_FLUX) == original
