"""The generation contract's modes and inputs, seed 001's prediction body, and fitting images to a model."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from events.generation import AdapterRef, GenerationMode, GenerationRequested, GenerationRequestedData
from functions.api.errors import ApiError
from functions.api.schemas.predictions import CreatePredictionRequest
from functions.api.services.adapters import AdapterChoice, combine
from infra.images import ImageRejected, binary_mask, fit_for_generation, normalize_image

JOB = "job_abc"
IMAGE = f"jobs/{JOB}/inputs/image.png"
MASK = f"jobs/{JOB}/inputs/mask.png"


def data(**overrides: Any) -> dict[str, Any]:
    fields = dict(
        jobId=JOB,
        modelId="tiny-sd",
        baseModel="tiny-sd",
        prompt="a fox",
        width=64,
        height=64,
        guidanceScale=7.5,
        numOutputs=1,
        numInferenceSteps=4,
        seed=1,
    )
    return {**fields, **overrides}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"initImageKey": IMAGE}, "initImageKey is not allowed in mode text-to-image"),
        ({"strength": 0.5}, "strength applies to image-to-image and inpainting only"),
        ({"mode": "image-to-image"}, "initImageKey is required in mode image-to-image"),
        ({"mode": "image-to-image", "initImageKey": IMAGE, "maskImageKey": MASK}, "maskImageKey is not allowed"),
        ({"mode": "inpainting", "initImageKey": IMAGE}, "maskImageKey is required in mode inpainting"),
        ({"mode": "image-to-image", "initImageKey": IMAGE, "strength": 1.5}, "less than or equal to 1"),
        ({"mode": "outpainting"}, "Input should be"),
    ],
)
def test_inconsistent_modes_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        GenerationRequestedData.model_validate(data(**fields))


def test_strength_defaults_per_mode() -> None:
    modify = GenerationRequestedData.model_validate(data(mode="image-to-image", initImageKey=IMAGE))
    inpaint = GenerationRequestedData.model_validate(data(mode="inpainting", initImageKey=IMAGE, maskImageKey=MASK))
    assert (modify.effective_strength, inpaint.effective_strength) == (0.8, 1.0)
    assert inpaint.input_keys() == [IMAGE, MASK]
    assert inpaint.mode is GenerationMode.INPAINTING


@pytest.mark.parametrize(
    ("key", "allowed"),
    [
        (IMAGE, True),
        ("uploads/ten_a/upl_0123456789abcdef/image.png", True),
        ("uploads/ten_b/upl_0123456789abcdef/image.png", False),  # another tenant's upload
        ("jobs/job_other/inputs/image.png", False),  # another job's input
        ("trainings/trn_1/adapter.safetensors", False),
        ("models/mod_1/data/dat_1/abc.png", False),
    ],
)
def test_a_job_reads_only_its_own_inputs_or_its_tenants_uploads(key: str, allowed: bool) -> None:
    envelope = {
        "source": "/producer",
        "subject": JOB,
        "tenantid": "ten_a",
        "data": data(mode="image-to-image", initImageKey=key),
    }
    if allowed:
        assert GenerationRequested.model_validate(envelope).data.initImageKey == key
    else:
        with pytest.raises(ValidationError, match="neither this job's input"):
            GenerationRequested.model_validate(envelope)


SEED_001_BODY = {
    "scaleConfigs": {"1": {"scale": 0.8, "modelId": "abc123", "trainingId": "def456"}},
    "prompt": "A summer dress with floral pattern in style of FJA90AB",
    "image_size": {"width": 512, "height": 512},
    "num_images": 4,
    "output_format": "png",
    "guidance_scale": 7.5,
    "num_inference_steps": 50,
}


def test_seed_001_documented_prediction_body_is_accepted_verbatim() -> None:
    body = CreatePredictionRequest.model_validate(SEED_001_BODY)
    assert body.scaleConfigs["1"].scale == 0.8 and body.num_images == 4


@pytest.mark.parametrize(
    "change",
    [
        {"num_images": 0},
        {"num_images": 5},
        {"image_size": {"width": 511, "height": 512}},
        {"image_size": {"width": 512, "height": 1537}},
        {"num_inference_steps": 0},
        {"num_inference_steps": 51},
        {"guidance_scale": 11},
        {"output_format": "gif"},
        {"scaleConfigs": {}},
        {"scaleConfigs": {"1": {"scale": 3, "modelId": "a", "trainingId": "b"}}},
        {"prompt": "   "},
    ],
)
def test_out_of_range_prediction_fields_are_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CreatePredictionRequest.model_validate({**SEED_001_BODY, **change})


def normalized(image: Image.Image):
    out = io.BytesIO()
    image.save(out, format="PNG")
    return normalize_image(out.getvalue(), max_bytes=1 << 24, max_pixels=1 << 24, max_side=1 << 24)


def test_fitting_keeps_a_fitting_image_and_trims_others_to_multiples_of_8() -> None:
    exact = normalized(Image.new("RGB", (96, 64)))
    assert fit_for_generation(exact, max_side=512, min_side=64, multiple=8) is exact
    odd = fit_for_generation(normalized(Image.new("RGB", (101, 70))), max_side=512, min_side=64, multiple=8)
    assert (odd.width, odd.height) == (96, 64)
    big = fit_for_generation(normalized(Image.new("RGB", (2000, 1000))), max_side=512, min_side=64, multiple=8)
    assert (big.width, big.height) == (512, 256)
    with pytest.raises(ImageRejected, match="at least 64"):
        fit_for_generation(normalized(Image.new("RGB", (1000, 100))), max_side=512, min_side=64, multiple=8)


def test_masks_are_binarized_resized_and_must_mark_something() -> None:
    grey = np.zeros((64, 64), dtype=np.uint8)
    grey[:, 32:] = 200  # light grey counts as white
    grey[:, 40:] = 100  # darker grey counts as black
    mask = Image.open(io.BytesIO(binary_mask(normalized(Image.fromarray(grey)), (32, 32))))
    values = np.asarray(mask)
    assert mask.size == (32, 32) and set(np.unique(values)) == {0, 255}
    assert values[:, 16:20].min() == 255 and values[:, 20:].max() == 0 and values[:, :16].max() == 0
    with pytest.raises(ImageRejected, match="all black"):
        binary_mask(normalized(Image.new("L", (64, 64))), (64, 64))


def test_adapters_of_different_base_models_are_not_mixed() -> None:
    def choice(n: int, base: str) -> AdapterChoice:
        ref = AdapterRef(modelId=f"mod_{n}", trainingId=f"trn_{n}", key=f"trainings/trn_{n}/adapter.safetensors")
        return AdapterChoice(adapter=ref, base_model=base, field=f"scaleConfigs.{n}")

    with pytest.raises(ApiError) as info:
        combine(None, [choice(1, "tiny-sd"), choice(2, "sd-xl")], "scaleConfigs")  # type: ignore[arg-type]
    assert (info.value.status, info.value.code) == (422, "incompatible_base_models")
    assert "mod_1 (tiny-sd)" in str(info.value) and "mod_2 (sd-xl)" in str(info.value)
