"""The namings mapped through the manifests, both ways, exact on the tiny manifests; the checks' refusals; kohya's
alphas folded; peft's and diffusers' older forms read (numpy only: what the API runs)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from infra.base_models import BUILTIN_MODELS, TINY_FLUX, TINY_SD, TINY_SDXL, BaseModelSpec
from infra.lora_files.checks import AdapterLimits, check_adapter
from infra.lora_files.convert import to_diffusers, to_kohya
from infra.lora_files.errors import AdapterFileError, AdapterProblem
from infra.lora_files.kohya_metadata import KohyaMetadata, model_hashes, with_hashes
from infra.lora_files.manifests import Manifest, load_manifest, manifest_for
from infra.lora_files.naming import kohya_names
from infra.lora_files.safetensors_file import Tensor, header_bytes_needed, read_file, write_file

RNG = np.random.default_rng(0)


def pair(shape: tuple[int, ...], rank: int = 4, dtype: str = "F32") -> tuple[Tensor, Tensor]:
    """A random LoRA pair for a layer of `shape` (Linear `[out, in]` or Conv2d `[out, in, kh, kw]`)."""
    down = RNG.standard_normal((rank, *shape[1:])).astype(np.float32)
    up = RNG.standard_normal((shape[0], rank, *([1] * (len(shape) - 2)))).astype(np.float32)
    return Tensor.from_float32(down, dtype), Tensor.from_float32(up, dtype)


def diffusers_file(manifest: Manifest, count: int | None = None, rank: int = 4, dtype: str = "F32") -> bytes:
    tensors = {}
    for component, modules in manifest.layers.items():
        for module, shape in list(modules.items())[:count]:
            down, up = pair(shape, rank, dtype)
            tensors[f"{component}.{module}.lora_A.weight"] = down
            tensors[f"{component}.{module}.lora_B.weight"] = up
    return write_file(tensors, {"format": "pt"})


def meta(spec: BaseModelSpec, rank: int = 4) -> KohyaMetadata:
    return KohyaMetadata(spec.family, spec.name, "out", rank=rank, alpha=float(rank), resolution=64, trigger_word="zq")


@pytest.mark.parametrize("name", ["tiny-sd", "tiny-sdxl", "tiny-flux", "tiny-shapes", "sd-1_5", "sd-xl", "flux.1"])
def test_every_layer_has_one_kohya_name_that_maps_back(name: str) -> None:
    manifest = load_manifest(name)
    names = kohya_names(manifest)
    for component, modules in manifest.layers.items():
        for module in modules:
            exported = names.export[(component, module)]
            target = names.targets[exported]
            assert target.component == component and module in target.modules
    # distinct unfused layers never share an export name
    single = [n for (c, m), n in names.export.items() if not names.targets[n].fused]
    assert len(single) == len(set(single))


def test_sdxl_exports_sd_scripts_sgm_names_and_reads_diffusers_style_ones_too() -> None:
    names = kohya_names(load_manifest("sd-xl"))
    expected = {
        "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q": "input_blocks_4_1_transformer_blocks_0_attn1_to_q",  # noqa: E501
        "down_blocks.2.attentions.1.proj_in": "input_blocks_8_1_proj_in",
        "down_blocks.0.resnets.0.conv1": "input_blocks_1_0_in_layers_2",
        "down_blocks.0.resnets.1.time_emb_proj": "input_blocks_2_0_emb_layers_1",
        "down_blocks.0.downsamplers.0.conv": "input_blocks_3_0_op",
        "down_blocks.1.resnets.0.conv_shortcut": "input_blocks_4_0_skip_connection",
        "mid_block.resnets.1.conv2": "middle_block_2_out_layers_3",
        "mid_block.attentions.0.transformer_blocks.9.ff.net.2": "middle_block_1_transformer_blocks_9_ff_net_2",
        "up_blocks.0.attentions.2.transformer_blocks.0.attn2.to_k": "output_blocks_2_1_transformer_blocks_0_attn2_to_k",
        "up_blocks.0.upsamplers.0.conv": "output_blocks_2_2_conv",
        "up_blocks.2.resnets.2.conv1": "output_blocks_8_0_in_layers_2",
        "conv_in": "input_blocks_0_0",
        "conv_out": "out_2",
        "time_embedding.linear_1": "time_embed_0",
        "add_embedding.linear_2": "label_emb_0_2",
    }
    for module, sgm in expected.items():
        assert names.export[("unet", module)] == f"lora_unet_{sgm}"
        assert names.targets[f"lora_unet_{module.replace('.', '_')}"].modules == (module,)
    assert (
        names.export[("text_encoder_2", "text_model.encoder.layers.31.mlp.fc2")]
        == "lora_te2_text_model_encoder_layers_31_mlp_fc2"
    )
    assert names.targets["lora_te1_encoder_layers_0_self_attn_q_proj"].component == "text_encoder"
    assert names.targets["lora_te2_encoder_layers_0_self_attn_q_proj"].component == "text_encoder_2"


def test_flux_fuses_qkv_and_single_blocks_in_bfl_names() -> None:
    names = kohya_names(load_manifest("flux.1"))
    qkv = names.targets["lora_unet_double_blocks_18_img_attn_qkv"]
    assert qkv.modules == tuple(f"transformer_blocks.18.attn.{p}" for p in ("to_q", "to_k", "to_v"))
    linear1 = names.targets["lora_unet_single_blocks_37_linear1"]
    assert linear1.modules[-1] == "single_transformer_blocks.37.proj_mlp" and len(linear1.modules) == 4
    assert names.export[("transformer", "norm_out.linear")] == "lora_unet_final_layer_adaLN_modulation_1"
    assert names.targets["lora_unet_final_layer_adaLN_modulation_1"].swap_halves
    assert names.export[("text_encoder", "encoder.layers.0.self_attn.q_proj")].startswith("lora_te1_text_model_")


@pytest.mark.parametrize("spec", [TINY_SD, TINY_SDXL, TINY_FLUX, BUILTIN_MODELS["tiny-shapes"]], ids=lambda s: s.name)
@pytest.mark.parametrize("dtype", ["F32", "F16", "BF16"])
def test_every_layer_round_trips_through_kohya_bit_for_bit(spec: BaseModelSpec, dtype: str) -> None:
    original = diffusers_file(manifest_for(spec), dtype=dtype)
    kohya = to_kohya(original, spec, meta(spec))
    header, tensors = read_file(kohya)
    assert all(k.startswith("lora_") for k in tensors)
    assert {t.dtype for t in tensors.values()} == {dtype}
    assert all(tensors[k].shape == () for k in tensors if k.endswith(".alpha"))
    assert header.metadata["ss_network_dim"] == "4"
    assert to_diffusers(kohya, spec) == original
    summary = check_adapter(kohya, spec)
    assert summary.naming == "kohya" and summary.dtype == dtype


SD_MODULE = "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q"
SD_KOHYA = "lora_unet_" + SD_MODULE.replace(".", "_")


@pytest.mark.parametrize("dtype", ["F32", "F16", "BF16"])
def test_kohya_alpha_is_folded_into_the_up_weight(dtype: str) -> None:
    down, up = pair(manifest_for(TINY_SD).layers["unet"][SD_MODULE], rank=4, dtype=dtype)
    alpha = Tensor.from_float32(np.array(2.0, dtype=np.float32), dtype)
    data = write_file(
        {f"{SD_KOHYA}.lora_down.weight": down, f"{SD_KOHYA}.lora_up.weight": up, f"{SD_KOHYA}.alpha": alpha}
    )
    _, tensors = read_file(to_diffusers(data, TINY_SD))
    assert set(tensors) == {f"unet.{SD_MODULE}.lora_A.weight", f"unet.{SD_MODULE}.lora_B.weight"}
    np.testing.assert_array_equal(tensors[f"unet.{SD_MODULE}.lora_A.weight"].array, down.array)
    folded = Tensor.from_float32(up.to_float32() * np.float32(0.5), dtype)
    np.testing.assert_array_equal(tensors[f"unet.{SD_MODULE}.lora_B.weight"].array, folded.array)


def test_peft_and_older_diffusers_namings_are_read() -> None:
    down, up = pair(manifest_for(TINY_SD).layers["unet"][SD_MODULE])
    te = "encoder.layers.0.self_attn.q_proj"
    te_down, te_up = pair(manifest_for(TINY_SD).layers["text_encoder"][te])
    expected = {
        f"unet.{SD_MODULE}.lora_A.weight": down,
        f"unet.{SD_MODULE}.lora_B.weight": up,
        f"text_encoder.{te}.lora_A.weight": te_down,
        f"text_encoder.{te}.lora_B.weight": te_up,
    }
    attn = SD_MODULE.removesuffix(".to_q")
    forms = {
        "peft": {
            f"base_model.model.{SD_MODULE}.lora_A.weight": down,
            f"base_model.model.{SD_MODULE}.lora_B.weight": up,
        },
        "bare": {f"{SD_MODULE}.lora_A.weight": down, f"{SD_MODULE}.lora_B.weight": up},
        "old": {f"unet.{attn}.processor.to_q_lora.down.weight": down, f"unet.{attn}.processor.to_q_lora.up.weight": up},
    }
    te_forms = {
        f"text_encoder.text_model.{te}.lora_linear_layer.down.weight": te_down,
        f"text_encoder.text_model.{te}.lora_linear_layer.up.weight": te_up,
    }
    for form, tensors in forms.items():
        data = write_file({**tensors, **te_forms} if form == "old" else tensors)
        _, back = read_file(to_diffusers(data, TINY_SD))
        wanted = expected if form == "old" else {k: v for k, v in expected.items() if k.startswith("unet.")}
        assert set(back) == set(wanted), form
        assert all(np.array_equal(back[k].array, wanted[k].array) for k in wanted), form
        assert check_adapter(data, TINY_SD).naming == ("diffusers" if form == "old" else "peft")


def test_sd_scripts_fused_flux_layers_split_into_exact_parts() -> None:
    """sd-scripts trains FLUX's qkv as one rank-r layer (no block structure): each part gets the whole down weight
    and its rows of the up weight, so every part's update up @ down is the fused one's rows."""
    manifest = manifest_for(TINY_FLUX)
    width = manifest.layers["transformer"]["transformer_blocks.0.attn.to_q"][1]
    down = RNG.standard_normal((6, width)).astype(np.float32)
    up = RNG.standard_normal((3 * width, 6)).astype(np.float32)
    name = "lora_unet_double_blocks_0_img_attn_qkv"
    data = write_file(
        {
            f"{name}.lora_down.weight": Tensor("F32", down),
            f"{name}.lora_up.weight": Tensor("F32", up),
            f"{name}.alpha": Tensor("F32", np.array(3.0, dtype=np.float32)),
        }
    )
    _, back = read_file(to_diffusers(data, TINY_FLUX))
    fused = (up * np.float32(0.5)) @ down
    for j, part in enumerate(("to_q", "to_k", "to_v")):
        key = f"transformer.transformer_blocks.0.attn.{part}"
        product = back[f"{key}.lora_B.weight"].array @ back[f"{key}.lora_A.weight"].array
        np.testing.assert_allclose(product, fused[j * width : (j + 1) * width], rtol=1e-5, atol=1e-5)


def _expect(problem: AdapterProblem, data: bytes, spec: BaseModelSpec = TINY_SD, **kwargs: object) -> str:
    with pytest.raises(AdapterFileError) as error:
        check_adapter(data, spec, **kwargs)  # type: ignore[arg-type]
    assert error.value.problem is problem, error.value.message
    return error.value.message


def test_refusals_name_the_problem() -> None:
    assert "tensors" in _expect(
        AdapterProblem.NO_LORA_KEYS, write_file({"emb": Tensor("F32", np.zeros(3, np.float32))})
    )
    sdxl = diffusers_file(manifest_for(TINY_SDXL))
    assert "SDXL (sd-xl)" in _expect(AdapterProblem.WRONG_FAMILY, sdxl, TINY_SD)
    flux = diffusers_file(load_manifest("flux.1"), count=3, rank=2)
    assert "FLUX.1 (flux.1)" in _expect(AdapterProblem.WRONG_FAMILY, flux, TINY_SD)
    down, up = pair((8, 8))
    unknown = write_file({"unet.no_such.layer.lora_A.weight": down, "unet.no_such.layer.lora_B.weight": up})
    assert "unet.no_such.layer.lora_A.weight" in _expect(AdapterProblem.UNKNOWN_LAYERS, unknown)
    down, up = pair((64, 48))
    bad = write_file({f"unet.{SD_MODULE}.lora_A.weight": down, f"unet.{SD_MODULE}.lora_B.weight": up})
    message = _expect(AdapterProblem.SHAPE_MISMATCH, bad)
    assert SD_MODULE in message and "[4, 48]" in message and "[64, 64]" in message
    big = diffusers_file(manifest_for(TINY_SD), count=2, rank=8)
    assert "rank 8" in _expect(AdapterProblem.RANK_TOO_LARGE, big, limits=AdapterLimits(max_rank=4))
    _expect(AdapterProblem.TOO_LARGE, big, limits=AdapterLimits(max_bytes=len(big) - 1))


def test_a_header_alone_is_checked() -> None:
    data = diffusers_file(manifest_for(TINY_SDXL))
    header = data[: header_bytes_needed(data[:8])]
    summary = check_adapter(header, TINY_SDXL, file_size=len(data))
    assert (summary.naming, summary.rank, summary.components, summary.dtype) == (
        "diffusers",
        4,
        ("text_encoder", "text_encoder_2", "unet"),
        "F32",
    )
    assert summary.layers == sum(len(m) for m in manifest_for(TINY_SDXL).layers.values())
    _expect(AdapterProblem.TRUNCATED, header, TINY_SDXL, file_size=len(data) - 1)


def test_kohya_metadata_and_sd_scripts_hashes() -> None:
    tensors = {"a.lora_down.weight": Tensor("F32", np.arange(8, dtype=np.float32).reshape(2, 4))}
    spec_meta = KohyaMetadata(
        TINY_SDXL.family,
        "tiny-sdxl",
        "mine-000002",
        rank=2,
        alpha=2.0,
        resolution=1024,
        steps=300,
        epoch=2,
        epochs=3,
        trigger_word="lfzq",
        images=12,
    )
    fields = with_hashes(tensors, spec_meta)
    assert all(isinstance(v, str) for v in fields.values())
    assert fields["ss_base_model_version"] == "sdxl_base_v1-0" and fields["ss_resolution"] == "(1024, 1024)"
    assert fields["ss_network_dim"] == "2" and fields["ss_network_alpha"] == "2.0" and fields["ss_epoch"] == "2"
    assert fields["ss_tag_frequency"] == '{"mine-000002": {"lfzq": 12}}'
    data = write_file(tensors, fields)
    # sd-scripts: sha256 of everything after the header, the same whatever the metadata
    assert fields["sshs_model_hash"] == hashlib.sha256(data[header_bytes_needed(data) :]).hexdigest()
    assert model_hashes(tensors, {**fields, "modelspec.title": "other"}) == model_hashes(tensors, fields)
    no_steps = KohyaMetadata(TINY_SD.family, "tiny-sd", "imported", rank=4, alpha=4.0).fields()
    assert "ss_steps" not in no_steps and "ss_num_epochs" not in no_steps and "ss_tag_frequency" not in no_steps


def test_a_fused_flux_layer_with_parts_missing_or_of_mixed_dtypes_round_trips() -> None:
    shapes = manifest_for(TINY_FLUX).layers["transformer"]
    block = "transformer.transformer_blocks.0.attn"
    q_down, q_up = pair(shapes["transformer_blocks.0.attn.to_q"], dtype="F16")
    only_q = write_file({f"{block}.to_q.lora_A.weight": q_down, f"{block}.to_q.lora_B.weight": q_up}, {"format": "pt"})
    kohya = to_kohya(only_q, TINY_FLUX, meta(TINY_FLUX))
    assert read_file(kohya)[1]["lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight"].shape[0] == 12
    assert to_diffusers(kohya, TINY_FLUX) == only_q  # the untrained k and v parts (zeros) are left out again
    k_down, k_up = pair(shapes["transformer_blocks.0.attn.to_k"], dtype="F32")
    mixed = {**read_file(only_q)[1], f"{block}.to_k.lora_A.weight": k_down, f"{block}.to_k.lora_B.weight": k_up}
    _, back = read_file(to_diffusers(to_kohya(write_file(mixed), TINY_FLUX, meta(TINY_FLUX)), TINY_FLUX))
    assert {t.dtype for t in back.values()} == {"F32"}  # fused as float32, every value exact
    assert all(np.array_equal(back[k].to_float32(), mixed[k].to_float32()) for k in mixed)
