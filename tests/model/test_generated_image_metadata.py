"""The generator's own `generate` on tiny-sd writes each image's A1111 parameters into its file: read back with
Pillow, every field is the request's, the seed is the image's own (output i is the sole output of seed + i), and
the adapters appear with their weights and hashes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import ExifTags, Image

from events.generation import AdapterRef, GenerationMode, GenerationRequestedData
from infra.settings import Settings
from tests.conftest import MODEL_CACHE
from tests.model.conftest import PipelineFactory, random_adapter
from workers.generator.image_metadata import lora_short_hash, parse_infotext
from workers.generator.pipelines import PipelineCache, decode_inputs, generate

KEY = "trainings/trn_meta/checkpoints/000002/adapter.safetensors"


@pytest.fixture(scope="module")
def cache() -> PipelineCache:
    return PipelineCache(Settings(model_cache_dir=MODEL_CACHE))


@pytest.fixture(scope="module")
def adapter(load_tiny_sd: PipelineFactory) -> bytes:
    return random_adapter(load_tiny_sd, seed=4)


def request(**fields: object) -> GenerationRequestedData:
    values: dict[str, object] = dict(
        jobId="job_meta",
        modelId="mdl_meta",
        baseModel="tiny-sd",
        prompt="a red zxq on a white background",
        negativePrompt="blurry",
        width=64,
        height=72,
        guidanceScale=6.5,
        numOutputs=2,
        numInferenceSteps=3,
        seed=11,
        adapters=[AdapterRef(modelId="mdl_meta", trainingId="trn_meta", key=KEY, scale=0.7, epoch="000002")],
    )
    return GenerationRequestedData.model_validate(values | fields)


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def test_png_outputs_carry_their_own_parameters(cache: PipelineCache, adapter: bytes) -> None:
    files = {KEY: adapter}
    result = generate(cache, request(), files.__getitem__)
    assert result.seeds == [11, 12] and result.sampler == "DDIM"  # tiny-sd's scheduler
    for index, data in enumerate(result.images):
        with Image.open(io.BytesIO(data)) as image:
            text = image.text["parameters"]  # type: ignore[attr-defined]
        assert text == result.parameters[index]
        parsed = parse_infotext(text)
        assert parsed.prompt == "a red zxq on a white background <lora:mdl_meta-000002:0.7>"
        assert parsed.negative_prompt == "blurry"
        assert parsed.loras() == {"mdl_meta-000002": 0.7}
        assert parsed.fields == {
            "Steps": "3",
            "Sampler": "DDIM",
            "CFG scale": "6.5",
            "Seed": str(11 + index),
            "Size": "64x72",
            "Model": "tiny-sd",
            "Lora hashes": f"mdl_meta-000002: {lora_short_hash(adapter)}",
        }
    # Output 1 is the sole output of a request seeded 12: the same picture, and the same parameters.
    alone = generate(cache, request(seed=12, numOutputs=1), files.__getitem__)
    assert alone.parameters == result.parameters[1:]
    assert int(np.abs(pixels(alone.images[0]) - pixels(result.images[1])).max()) <= 1
    assert int(np.abs(pixels(result.images[0]) - pixels(result.images[1])).max()) > 10, "two seeds, two pictures"


def test_jpeg_image_to_image_carries_them_in_exif(cache: PipelineCache) -> None:
    job = request(
        mode=GenerationMode.IMAGE_TO_IMAGE,
        initImageKey="jobs/job_meta/inputs/image.png",
        strength=0.6,
        numOutputs=1,
        numInferenceSteps=5,
        outputFormat="jpeg",
        adapters=[],
        negativePrompt=None,
    )
    picture = Image.fromarray(np.random.default_rng(0).integers(0, 256, (72, 64, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    result = generate(cache, job, lambda key: b"", decode_inputs(job, buffer.getvalue(), None))
    with Image.open(io.BytesIO(result.images[0])) as image:
        assert image.format == "JPEG"
        comment = image.getexif().get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.UserComment]
    assert comment.startswith(b"UNICODE\x00")
    parsed = parse_infotext(comment[8:].decode("utf-16-be"))
    assert parsed.prompt == "a red zxq on a white background" and parsed.negative_prompt == ""
    assert parsed.fields["Denoising strength"] == "0.6" and parsed.fields["Seed"] == "11"
    assert "Lora hashes" not in parsed.fields
    again = generate(cache, job, lambda key: b"", decode_inputs(job, buffer.getvalue(), None))
    assert again.images == result.images, "same request, same bytes, metadata included"
