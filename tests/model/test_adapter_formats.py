"""Each download format, loaded back into a fresh pipeline by diffusers' own `load_lora_weights` (which detects
kohya keys), generates what the service generates with the original adapter; and the kohya form converts back to
the original's exact tensors.

Tolerance: the largest per-channel pixel difference of the two images (0..255), at most `TOLERANCE`. Measured 0
on every family: a scale-1 export moves no weight bit, and diffusers' kohya reader only renames and splits.

tiny-flux at its tiny width: diffusers' kohya FLUX reader splits a single block's fused `linear1` at FLUX.1's
hard-coded widths (3072, 3072, 3072, 12288), so a tiny single block's q, k, v and MLP input cannot go through it
(it asserts), and diffusers 0.42 leaves FLUX's top-level layers (`img_in`, `final_layer_linear`, ...) out of a
kohya file's transformer (it emits them without the `transformer.` prefix). tiny-flux's adapter through diffusers
covers the double blocks and the single blocks' `linear2`; the single blocks' fused layers are checked through our
own reader (kohya -> diffusers -> identical tensors -> identical images), and at FLUX.1's real widths every layer
goes through diffusers' kohya reader (`test_diffusers_reads_every_layer_of_a_full_size_kohya_export`).
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline, FluxPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline
from diffusers.utils.state_dict_utils import convert_all_state_dict_to_peft, convert_unet_state_dict_to_peft
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict
from PIL import Image
from safetensors.torch import load as st_load

from events.generation import AdapterRef, GenerationRequestedData
from infra.base_models import BUILTIN_MODELS, FAMILY_DEFAULTS, TINY_FLUX_TARGETS, TINY_SD_TARGETS, BaseModelSpec, Family
from infra.lora_files.convert import to_diffusers, to_kohya
from infra.lora_files.kohya_metadata import KohyaMetadata
from infra.lora_files.manifests import Manifest, load_manifest
from infra.lora_files.safetensors_file import read_file
from infra.lora_files.scales import metadata_configs
from infra.settings import Settings
from tests.conftest import MODEL_CACHE
from tests.unit.test_lora_files_naming import diffusers_file
from workers.generator.image_metadata import output_seed
from workers.generator.pipelines import PipelineCache, family_arguments, generate
from workers.module_construction import MODULE_CONSTRUCTION
from workers.trainer import lora

TOLERANCE = 0
# tiny-flux's layers diffusers' kohya reader can split at a tiny width (see the module docstring).
FLUX_DIFFUSERS_READABLE = tuple(
    f"transformer_blocks.{i}.{m}" for i in range(2) for m in TINY_FLUX_TARGETS if not m.startswith("proj_")
) + tuple(f"single_transformer_blocks.{i}.proj_out" for i in range(4))


FLUX_TOP_LEVEL = {
    "x_embedder",
    "context_embedder",
    "proj_out",
    "norm_out.linear",
    *(f"time_text_embed.{e}_embedder.linear_{i}" for e in ("timestep", "text", "guidance") for i in (1, 2)),
}


@pytest.fixture(scope="module")
def cache() -> PipelineCache:
    return PipelineCache(Settings(model_cache_dir=MODEL_CACHE))


@pytest.fixture(scope="module")
def loaders(load_tiny_sd: Callable, load_tiny_sdxl: Callable, load_tiny_flux: Callable) -> dict[str, Callable]:
    return {"tiny-sd": load_tiny_sd, "tiny-sdxl": load_tiny_sdxl, "tiny-flux": load_tiny_flux}


def adapter_with_text_encoders(pipeline: DiffusionPipeline, seed: int, targets: tuple[str, ...]) -> bytes:
    """Random LoRA weights on the denoiser's `targets` and on every CLIP encoder's attention (kohya's `lora_te`
    names get exercised too); the pipeline is thrown away after."""
    component, denoiser = lora.denoiser_of(pipeline)
    modules = {component: denoiser}
    for name in ("text_encoder", "text_encoder_2"):
        encoder = getattr(pipeline, name, None)
        if encoder is not None and type(encoder).__name__.startswith("CLIP"):
            modules[name] = encoder
    generator = torch.Generator().manual_seed(seed)
    with MODULE_CONSTRUCTION:
        for name, module in modules.items():
            module.requires_grad_(False)
            wanted = list(targets) if name == component else lora.TEXT_ENCODER_TARGETS
            module.add_adapter(LoraConfig(r=4, lora_alpha=4, init_lora_weights="gaussian", target_modules=wanted))
    with torch.no_grad():
        for module in modules.values():
            for param in (p for p in module.parameters() if p.requires_grad):
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    return lora.save_adapter_file(pipeline, {name: get_peft_model_state_dict(m) for name, m in modules.items()})


def job(base: str, key: str | None = None) -> GenerationRequestedData:
    adapters = [AdapterRef(modelId="mod_x", trainingId="trn_x", key=key)] if key else []
    return GenerationRequestedData.model_validate(
        dict(
            jobId="job_formats",
            modelId=base,
            baseModel=base,
            prompt="a photo of lfzq",
            width=64,
            height=64,
            guidanceScale=3.5,
            numOutputs=1,
            numInferenceSteps=2,
            seed=7,
            adapters=adapters,
        )
    )


def pixels(image: bytes | Image.Image) -> np.ndarray:
    if isinstance(image, bytes):
        image = Image.open(io.BytesIO(image))
    return np.asarray(image.convert("RGB"), dtype=np.int16)


def diffusers_image(pipeline: DiffusionPipeline, request: GenerationRequestedData) -> Image.Image:
    """What the pipeline makes for `request`, called as the generator calls it (same seed, same arguments)."""
    family = family_arguments(pipeline, request)
    with torch.inference_mode():
        return pipeline(
            prompt=request.prompt,
            width=request.width,
            height=request.height,
            num_inference_steps=request.numInferenceSteps,
            generator=[torch.Generator("cpu").manual_seed(output_seed(request.seed, 0))],
            **family,
        ).images[0]


def metadata(base: str) -> KohyaMetadata:
    spec = BUILTIN_MODELS[base]
    return KohyaMetadata(spec.family, base, "formats", rank=4, alpha=4.0, resolution=64, trigger_word="lfzq")


def service_image(cache: PipelineCache, base: str, adapter: bytes) -> bytes:
    # A key of the file's own: the generator keeps a loaded adapter by its key, so two files under one key would
    # both generate with whichever was loaded first.
    key = f"trainings/trn_{hashlib.sha256(adapter).hexdigest()[:16]}/adapter.safetensors"
    return generate(cache, job(base, key), {key: adapter}.__getitem__).images[0]


CASES = {
    "tiny-sd": TINY_SD_TARGETS,
    "tiny-sdxl": TINY_SD_TARGETS,
    "tiny-flux": FLUX_DIFFUSERS_READABLE,
}


@pytest.mark.parametrize("base", sorted(CASES))
@pytest.mark.parametrize("fmt", ["diffusers", "kohya"])
def test_a_download_loaded_by_diffusers_generates_the_services_image(
    cache: PipelineCache, loaders: dict[str, Callable], tmp_path: Path, base: str, fmt: str
) -> None:
    load = loaders[base]
    adapter = adapter_with_text_encoders(load(), seed=3, targets=CASES[base])
    expected = service_image(cache, base, adapter)
    assert np.abs(pixels(expected) - pixels(generate(cache, job(base), {}.__getitem__).images[0])).max() > 20
    data = adapter if fmt == "diffusers" else to_kohya(adapter, BUILTIN_MODELS[base], metadata(base))
    if fmt == "kohya":
        assert all(k.startswith("lora_") for k in read_file(data)[1])
    file = tmp_path / "adapter.safetensors"
    file.write_bytes(data)
    pipeline = load()
    with MODULE_CONSTRUCTION:
        pipeline.load_lora_weights(str(file))
    # every layer of the file landed (the text encoders' too): none dropped by a name diffusers could not map
    adapted = sum(
        name.endswith(".lora_A")
        for c in ("unet", "transformer", "text_encoder", "text_encoder_2")
        if isinstance(m := getattr(pipeline, c, None), torch.nn.Module)
        for name, _ in m.named_modules()
    )
    assert adapted == sum(k.endswith(".lora_A.weight") for k in read_file(adapter)[1])
    got = diffusers_image(pipeline, job(base))
    assert int(np.abs(pixels(got) - pixels(expected)).max()) <= TOLERANCE


@pytest.mark.parametrize("base", sorted(CASES))
def test_kohya_converts_back_to_the_original_bytes(loaders: dict[str, Callable], base: str) -> None:
    spec = BUILTIN_MODELS[base]
    targets = TINY_FLUX_TARGETS if base == "tiny-flux" else TINY_SD_TARGETS  # all of tiny-flux, fused layers too
    adapter = adapter_with_text_encoders(loaders[base](), seed=4, targets=targets)
    kohya = to_kohya(adapter, spec, metadata(base))
    assert to_diffusers(kohya, spec) == adapter
    _, original = read_file(adapter)
    _, back = read_file(to_diffusers(kohya, spec))
    assert all(np.array_equal(original[k].array, back[k].array) for k in original)


def test_the_fused_flux_layers_generate_the_same_image_through_our_reader(
    cache: PipelineCache, loaders: dict[str, Callable]
) -> None:
    spec = BUILTIN_MODELS["tiny-flux"]
    adapter = adapter_with_text_encoders(loaders["tiny-flux"](), seed=5, targets=TINY_FLUX_TARGETS)
    kohya = to_kohya(adapter, spec, metadata("tiny-flux"))
    assert any("single_blocks_0_linear1" in k for k in read_file(kohya)[1])
    assert service_image(cache, "tiny-flux", to_diffusers(kohya, spec)) == service_image(cache, "tiny-flux", adapter)


@pytest.mark.parametrize("name", ["sd-1_5", "sd-xl", "flux.1"])
def test_diffusers_reads_every_layer_of_a_full_size_kohya_export(name: str) -> None:
    """Every layer of the real SD 1.5, SDXL and FLUX.1-dev (the family manifests) in a rank-1 adapter, exported to
    kohya and read back by the pipeline class's own `lora_state_dict` (what `load_lora_weights` runs first: SDXL's
    SGM names mapped with SDXL's 2 layers per block, FLUX's fused layers split at FLUX.1's real widths): the same
    tensors on the same modules. Text encoders come back under transformers' old `text_model.` root, which the
    load maps onto the CLIP modules (the tiny pipelines above load them)."""
    manifest = load_manifest(name)
    spec = BaseModelSpec(name="real", source="s3://b/real", family=manifest.family, **FAMILY_DEFAULTS[manifest.family])  # type: ignore[arg-type]
    # OpenCLIP-G's text_projection is left out: diffusers reads its kohya name but not into peft's naming (no
    # trainer adapts it; sd-scripts does not either)
    layers = {c: {m: v for m, v in mods.items() if m != "text_projection"} for c, mods in manifest.layers.items()}
    original = diffusers_file(Manifest(manifest.name, manifest.family, manifest.description, layers), rank=1)
    kohya = to_kohya(original, spec, KohyaMetadata(manifest.family, "real", "full", rank=1, alpha=1.0))
    pipeline_class = {Family.SD15: StableDiffusionPipeline, Family.SDXL: StableDiffusionXLPipeline}.get(
        manifest.family, FluxPipeline
    )
    extra = {} if manifest.family is Family.FLUX else {"unet_config": SimpleNamespace(layers_per_block=2)}
    state = pipeline_class.lora_state_dict(st_load(kohya), **extra)
    state = dict(state[0] if isinstance(state, tuple) else state)
    text = {k: v for k, v in state.items() if k.startswith("text_encoder")}
    denoiser = {k: v for k, v in state.items() if k not in text}
    if manifest.family is Family.FLUX:
        # diffusers 0.42 emits FLUX's top-level layers (img_in, txt_in, time_in, vector_in, guidance_in,
        # final_layer) without the `transformer.` prefix, and its FLUX loader then leaves them out: named here so
        # the rest is compared; an export carries them for ComfyUI and Forge, diffusers drops them
        unprefixed = {k for k in denoiser if not k.startswith("transformer.")}
        assert {k.split(".lora_")[0] for k in unprefixed} == FLUX_TOP_LEVEL
        peft = {(k if k.startswith("transformer.") else f"transformer.{k}"): v for k, v in denoiser.items()}
    else:
        unet = convert_unet_state_dict_to_peft({k.removeprefix("unet."): v for k, v in denoiser.items()})
        peft = {f"unet.{k}": v for k, v in unet.items()}
    peft |= convert_all_state_dict_to_peft(text)
    expected = st_load(original)
    # CLIP-L's modules lost the `text_model.` root in transformers 5 (OpenCLIP-G's kept it)
    read_back = {(k if k in expected else k.replace(".text_model.", ".", 1)): v for k, v in peft.items()}
    assert set(read_back) == set(expected)
    assert all(torch.equal(read_back[k], expected[k]) for k in expected)


def _adapter_config(rslora: bool, targets: list[str]) -> LoraConfig:
    """A LoraConfig whose every layer's scale is a power of two (so folding it into the up weight is exact)."""
    if rslora:  # 4 / sqrt(4)
        return LoraConfig(r=4, lora_alpha=4, use_rslora=True, init_lora_weights="gaussian", target_modules=targets)
    return LoraConfig(  # 1/4 by default, to_q's 8/4, to_k's 1/2
        r=4,
        lora_alpha=1,
        alpha_pattern={"to_q": 8, "q_proj": 8},
        rank_pattern={"to_k": 2, "k_proj": 2},
        init_lora_weights="gaussian",
        target_modules=targets,
    )


@pytest.mark.parametrize("rslora", [False, True], ids=["patterns", "rslora"])
def test_diffusers_lora_metadata_is_served_at_its_own_scales(
    cache: PipelineCache, loaders: dict[str, Callable], tmp_path: Path, rslora: bool
) -> None:
    """diffusers >= 0.34 writes each component's LoraConfig into the file (`lora_adapter_metadata`), and its
    `load_lora_weights` builds the adapter from it: lora_alpha / r, alpha_pattern, rank_pattern, rslora. The import
    folds those scales into the up weights, so the service's image of the converted file is diffusers' own image
    of the original; served unconverted (the generator loads a state dict, without metadata), it is not."""
    pipeline = loaders["tiny-sd"]()
    configs = {
        "unet": _adapter_config(rslora, list(TINY_SD_TARGETS)),
        "text_encoder": _adapter_config(rslora, list(lora.TEXT_ENCODER_TARGETS)),
    }
    generator = torch.Generator().manual_seed(6)
    with MODULE_CONSTRUCTION:
        for name, config in configs.items():
            getattr(pipeline, name).requires_grad_(False)
            getattr(pipeline, name).add_adapter(config)
    with torch.no_grad():
        for name in configs:
            for param in (p for p in getattr(pipeline, name).parameters() if p.requires_grad):
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    StableDiffusionPipeline.save_lora_weights(
        tmp_path,
        unet_lora_layers=get_peft_model_state_dict(pipeline.unet),
        text_encoder_lora_layers=get_peft_model_state_dict(pipeline.text_encoder),
        unet_lora_adapter_metadata=configs["unet"].to_dict(),
        text_encoder_lora_adapter_metadata=configs["text_encoder"].to_dict(),
    )
    file = tmp_path / lora.ADAPTER_FILE
    original = file.read_bytes()
    header, _ = read_file(original)
    # peft's own scale of every layer is the one the import computes from the metadata
    scales = metadata_configs(header.metadata)
    for name in configs:
        layers = [(path, m) for path, m in getattr(pipeline, name).named_modules() if hasattr(m, "scaling")]
        assert layers
        for path, module in layers:
            ours = scales[name].scale(path, module.r["default"], path)
            assert ours == pytest.approx(module.scaling["default"], rel=1e-7), path
    assert {m.scaling["default"] for _, m in pipeline.unet.named_modules() if hasattr(m, "scaling")} == (
        {2.0} if rslora else {0.25, 0.5, 2.0}
    )
    fresh = loaders["tiny-sd"]()
    with MODULE_CONSTRUCTION:
        fresh.load_lora_weights(str(file))
    expected = pixels(diffusers_image(fresh, job("tiny-sd")))
    converted = to_diffusers(original, BUILTIN_MODELS["tiny-sd"])
    assert read_file(converted)[0].metadata == {"format": "pt"}
    assert int(np.abs(pixels(service_image(cache, "tiny-sd", converted)) - expected).max()) <= TOLERANCE
    assert np.abs(pixels(service_image(cache, "tiny-sd", original)) - expected).max() > 0
