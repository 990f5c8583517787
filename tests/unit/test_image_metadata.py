"""The A1111 infotext of generated images: its text, read back the way A1111 parses it, and its place in PNG and
JPEG files, read back with Pillow alone."""

from __future__ import annotations

import io
import json
import struct

import pytest
from PIL import ExifTags, Image

from workers.generator.image_metadata import (
    ImageParameters,
    LoraUse,
    exif_with_user_comment,
    infotext,
    lora_name,
    lora_short_hash,
    output_seed,
    parse_infotext,
    png_info,
    read_parameters,
    sampler_name,
)

PARAMETERS = ImageParameters(
    prompt="a red zxq on a white background",
    negative_prompt="blurry, low quality",
    steps=20,
    sampler="Euler a",
    cfg_scale=7.5,
    seed=42,
    width=512,
    height=384,
    model="tiny-shapes",
    loras=(LoraUse("mdl_a", 0.8, "0123456789ab"), LoraUse("mdl_b-000002", 1.0, "ba9876543210")),
)


def encode(fmt: str, text: str) -> bytes:
    image = Image.new("RGB", (16, 16), (200, 10, 10))
    buffer = io.BytesIO()
    if fmt == "PNG":
        image.save(buffer, format="PNG", pnginfo=png_info(text))
    else:
        image.save(buffer, format="JPEG", quality=92, exif=exif_with_user_comment(text))
    return buffer.getvalue()


def test_the_text_is_a1111s_three_parts_in_its_order() -> None:
    text = infotext(PARAMETERS)
    assert text.split("\n") == [
        "a red zxq on a white background <lora:mdl_a:0.8> <lora:mdl_b-000002:1>",
        "Negative prompt: blurry, low quality",
        'Steps: 20, Sampler: Euler a, CFG scale: 7.5, Seed: 42, Size: 512x384, Model: tiny-shapes, Lora hashes: "mdl_a:'
        ' 0123456789ab, mdl_b-000002: ba9876543210"',
    ]


def test_parsed_back_it_gives_every_field() -> None:
    parsed = parse_infotext(infotext(PARAMETERS))
    assert parsed.prompt.startswith(PARAMETERS.prompt)
    assert parsed.negative_prompt == "blurry, low quality"
    assert parsed.loras() == {"mdl_a": 0.8, "mdl_b-000002": 1.0}
    assert parsed.fields == {
        "Steps": "20",
        "Sampler": "Euler a",
        "CFG scale": "7.5",
        "Seed": "42",
        "Size": "512x384",
        "Model": "tiny-shapes",
        "Lora hashes": "mdl_a: 0123456789ab, mdl_b-000002: ba9876543210",
    }


def test_optional_pairs_appear_only_when_known_and_values_with_commas_are_quoted() -> None:
    plain = ImageParameters(
        prompt="a cat\non two lines",
        negative_prompt=None,
        steps=4,
        sampler="Euler",
        cfg_scale=1.0,
        distilled_cfg_scale=3.5,
        seed=7,
        width=64,
        height=64,
        model="base, v2: final",
        model_hash="abcdef0123",
        denoising_strength=0.6,
    )
    text = infotext(plain)
    assert "Negative prompt" not in text and "Lora hashes" not in text and "<lora:" not in text
    parsed = parse_infotext(text)
    assert parsed.prompt == "a cat\non two lines" and parsed.negative_prompt == ""
    assert parsed.fields["Model"] == "base, v2: final"
    assert '"base, v2: final"' in text
    assert (parsed.fields["CFG scale"], parsed.fields["Distilled CFG Scale"]) == ("1.0", "3.5")
    assert (parsed.fields["Model hash"], parsed.fields["Denoising strength"]) == ("abcdef0123", "0.6")
    assert list(parsed.fields).index("Model hash") < list(parsed.fields).index("Model")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_pillow_reads_the_text_back_from_the_file(fmt: str) -> None:
    text = infotext(PARAMETERS) + " — ünïcode"
    data = encode(fmt, text)
    with Image.open(io.BytesIO(data)) as image:
        if fmt == "PNG":
            carried = image.text["parameters"]  # type: ignore[attr-defined]
        else:
            comment = image.getexif().get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.UserComment]
            assert comment[:8] == b"UNICODE\x00"
            carried = comment[8:].decode("utf-16-be")
    assert carried == text == read_parameters(data)
    assert encode(fmt, text) == data, "same pixels and text must give the same bytes"


def test_the_user_comment_is_undefined_type_in_a_big_endian_block() -> None:
    block = exif_with_user_comment("x")
    assert block.startswith(b"Exif\x00\x00MM\x00\x2a")
    tag, kind, count = struct.unpack_from(">HHI", block, 6 + 28)
    assert (tag, kind, count) == (0x9286, 7, 8 + 2)


def test_a_png_without_parameters_reads_none() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PNG")
    assert read_parameters(buffer.getvalue()) is None


def test_samplers_are_named_as_a1111_names_them() -> None:
    class EulerAncestralDiscreteScheduler:
        config = {"use_karras_sigmas": False}

    class DPMSolverMultistepScheduler:
        config = {"algorithm_type": "sde-dpmsolver++", "solver_order": 2, "use_karras_sigmas": True}

    class FlowMatchEulerDiscreteScheduler:
        config: dict = {}

    class SomeNewScheduler:
        config: dict = {}

    assert sampler_name(EulerAncestralDiscreteScheduler()) == ("Euler a", None)
    assert sampler_name(DPMSolverMultistepScheduler()) == ("DPM++ 2M SDE", "Karras")
    assert sampler_name(FlowMatchEulerDiscreteScheduler()) == ("Euler", None)
    assert sampler_name(SomeNewScheduler()) == ("SomeNewScheduler", None)


def test_lora_hash_is_of_the_tensor_bytes_after_the_header() -> None:
    def file(metadata: dict[str, str]) -> bytes:
        header = json.dumps(
            {"__metadata__": metadata, "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
        ).encode()
        return struct.pack("<Q", len(header)) + header + struct.pack("<2f", 1.0, 2.0)

    first, second = file({"a": "1"}), file({"a": "a longer value"})
    assert lora_short_hash(first) == lora_short_hash(second), "the header's metadata does not count"
    assert len(lora_short_hash(first)) == 12
    assert lora_short_hash(first) != lora_short_hash(first[:-4] + struct.pack("<f", 3.0))


def test_names_and_seeds() -> None:
    assert lora_name("mdl_x", None) == "mdl_x" and lora_name("mdl_x", "000003") == "mdl_x-000003"
    assert [output_seed(5, i) for i in range(3)] == [5, 6, 7]
    assert output_seed(2**32 - 1, 1) == 0
