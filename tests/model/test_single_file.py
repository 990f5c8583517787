"""Single-file base models: tiny-sd written as one original-layout checkpoint, and tiny-flux's transformer as one
file, each loaded through `load_pipeline` with a weightless configuration folder, make the folder form's images; an
SDXL checkpoint (CLIP and OpenCLIP encoders) holds the folder form's weights."""

from __future__ import annotations

import hashlib
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import FluxPipeline, StableDiffusionPipeline
from PIL import Image
from pydantic import ValidationError
from safetensors.torch import save_file

from events.generation import GenerationRequestedData
from infra.base_models import base_model_registry
from infra.settings import BaseModelSource, Settings
from tests.conftest import MODEL_CACHE
from tests.model.conftest import load_folder
from tests.single_file_export import save_sd_single_file
from workers.base_models.loader import BaseModelUnavailable, load_pipeline
from workers.base_models.tiny_flux import ensure_tiny_flux
from workers.base_models.tiny_sd import ensure_tiny_sd
from workers.generator.pipelines import PipelineCache, generate


def weightless_copy(folder: Path, destination: Path, keep: tuple[str, ...] = ()) -> Path:
    """The folder's configs, tokenizers and scheduler without the weights (but those of the `keep` components):
    what a single file's `config` needs."""
    shutil.copytree(
        folder,
        destination,
        ignore=lambda here, names: [
            n for n in names if n.endswith(".safetensors") and Path(here).name not in keep and Path(here) != folder
        ],
    )
    return destination


def no_adapters(key: str) -> bytes:
    raise AssertionError(f"a base-model request read adapter {key}")


def difference(a: bytes, b: bytes) -> int:
    """The largest per-channel pixel difference of two encoded images."""
    pixels = [np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16) for data in (a, b)]
    return int(np.abs(pixels[0] - pixels[1]).max())


def image(cache: PipelineCache, base: str) -> bytes:
    request = GenerationRequestedData(
        jobId="job_single_file",
        modelId=base,
        baseModel=base,
        prompt="a photo of lfzq",
        width=64,
        height=64,
        guidanceScale=5.0,
        numOutputs=1,
        numInferenceSteps=3,
        seed=11,
    )
    return generate(cache, request, no_adapters).images[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """tiny-sd as one original-layout checkpoint and tiny-flux's transformer as one file, with weightless
    configuration folders beside them."""
    root = tmp_path_factory.mktemp("single-file")
    sd_folder, flux_folder = ensure_tiny_sd(MODEL_CACHE), ensure_tiny_flux(MODEL_CACHE)
    transformer = load_folder(FluxPipeline, flux_folder).transformer
    save_file(
        {k: v.contiguous() for k, v in transformer.state_dict().items()}, str(root / "flux-transformer.safetensors")
    )
    return {
        "sd": save_sd_single_file(load_folder(StableDiffusionPipeline, sd_folder), root / "tiny-sd.safetensors"),
        "sd-config": weightless_copy(sd_folder, root / "sd-config"),
        "flux": root / "flux-transformer.safetensors",
        # FLUX files hold the transformer only: the folder keeps the VAE's and the text encoders' weights.
        "flux-config": weightless_copy(
            flux_folder, root / "flux-config", keep=("vae", "text_encoder", "text_encoder_2")
        ),
    }


def settings_with(files: dict[str, Path], **entries: BaseModelSource) -> Settings:
    return Settings(model_cache_dir=MODEL_CACHE, base_models=entries)


def test_a_checkpoint_saved_from_tiny_sd_as_one_file_makes_the_folder_forms_image(files: dict[str, Path]) -> None:
    assert not list(files["sd-config"].rglob("*.safetensors")), "the configuration folder must hold no weights"
    settings = settings_with(
        files, **{"sd-file": BaseModelSource(source=str(files["sd"]), family="sd-1_5", config=str(files["sd-config"]))}
    )
    cache = PipelineCache(settings)
    # The same pixels (the files differ in their embedded parameters alone: each names its base model).
    assert difference(image(cache, "sd-file"), image(cache, "tiny-sd")) == 0


def test_a_flux_transformer_file_makes_the_folder_forms_image(files: dict[str, Path]) -> None:
    entry = BaseModelSource(
        source=str(files["flux"]),
        family="flux.1",
        config=str(files["flux-config"]),
        sha256=hashlib.sha256(files["flux"].read_bytes()).hexdigest(),
    )
    cache = PipelineCache(settings_with(files, **{"flux-file": entry}))
    assert difference(image(cache, "flux-file"), image(cache, "tiny-flux")) == 0


def test_bad_single_files_are_refused_with_the_setting_to_fix(files: dict[str, Path], tmp_path: Path) -> None:
    pickle = tmp_path / "model.ckpt"
    pickle.write_bytes(b"not loaded")
    # A pickle is refused where it is configured (settings, the operator API), before any worker sees it.
    with pytest.raises(ValidationError, match="pickle checkpoint"):
        BaseModelSource(source=str(pickle), family="sd-1_5", config=str(files["sd-config"]))
    settings = settings_with(
        files,
        **{
            "no-config": BaseModelSource(source=str(files["sd"]), family="sd-1_5"),
            "wrong-sum": BaseModelSource(
                source=str(files["sd"]), family="sd-1_5", config=str(files["sd-config"]), sha256="0" * 64
            ),
            "wrong-family": BaseModelSource(source=str(files["sd"]), family="flux.1", config=str(files["flux-config"])),
            "missing": BaseModelSource(source=str(tmp_path / "gone.safetensors"), config=str(files["sd-config"])),
        },
    )
    registry = base_model_registry(settings)
    expected = {
        "no-config": r"set base_models\.no-config\.config to a diffusers folder .* sd-1_5 family",
        "wrong-sum": f"expected {'0' * 64}, got",
        "wrong-family": "does not fit the flux.1 configuration",
        "missing": "no checkpoint file",
    }
    for name, message in expected.items():
        with pytest.raises(BaseModelUnavailable, match=message):
            load_pipeline(registry[name], settings)


def test_an_sdxl_checkpoint_in_one_file_holds_the_folder_forms_weights(tmp_path: Path) -> None:
    # tiny-sdxl's two text encoders share one width, and diffusers' reader tells SDXL's encoders apart by width:
    # the bench's tiny SDXL shape has them differ, as the real SDXL's (768 and 1280) do.
    from bench.random_shapes import build_sdxl_random

    built = build_sdxl_random(tiny=True)
    built.save_pretrained(tmp_path / "folder")
    save_sd_single_file(built, tmp_path / "sdxl.safetensors")
    entry = BaseModelSource(
        source=str(tmp_path / "sdxl.safetensors"),
        family="sd-xl",
        config=str(weightless_copy(tmp_path / "folder", tmp_path / "config")),
    )
    settings = Settings(
        model_cache_dir=MODEL_CACHE, base_models={"sdxl-file": entry, "sdxl-folder": str(tmp_path / "folder")}
    )
    cache = PipelineCache(settings)
    single, folder = cache.get("sdxl-file")[0], cache.get("sdxl-folder")[0]
    for component in ("unet", "vae", "text_encoder", "text_encoder_2"):
        ours, theirs = getattr(single, component).state_dict(), getattr(folder, component).state_dict()
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours), component
    # The same weights; the folder's are memory-mapped at other alignments, which moves a CPU matmul's last bit:
    # at most one level in a pixel.
    assert difference(image(cache, "sdxl-file"), image(cache, "sdxl-folder")) <= 1
