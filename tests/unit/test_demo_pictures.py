"""The demo's training pictures are what their captions say (crosses under the trigger word, the base's shapes under
the class word) by the dataset's own measures, and its contact sheet lays pictures out a row per prompt, a column per
way of generating."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from events.captions import TRIGGER_PLACEHOLDER
from infra import shapes_dataset as dataset
from infra.local import demo_training
from infra.local.contact_sheet import CELL, GAP, LABEL_HEIGHT, SheetRow, contact_sheet


@pytest.mark.parametrize(("picture", "description"), demo_training.TRAINING_PICTURES)
def test_each_training_picture_is_what_its_caption_says(picture: dataset.ShapeSpec, description: str) -> None:
    image = dataset.render(picture, demo_training.SIDE)
    assert dataset.classify_shape(image) == picture.shape
    assert dataset.dominant_colour(image) == picture.colour
    if picture.shape == dataset.HELD_OUT_SHAPE:
        assert description == dataset.caption(picture, trigger=TRIGGER_PLACEHOLDER)
    else:
        assert description == dataset.caption(picture, trigger=dataset.CLASS_WORD), (
            "a regularisation picture is captioned with the class word"
        )


def test_the_lesson_is_eight_large_crosses_and_eight_of_the_base_shapes() -> None:
    crosses = [spec for spec, _ in demo_training.TRAINING_PICTURES if spec.shape == dataset.HELD_OUT_SHAPE]
    kept = [spec for spec, _ in demo_training.TRAINING_PICTURES if spec.shape != dataset.HELD_OUT_SHAPE]
    assert len(crosses) == 8 and {spec.size for spec in crosses} == {dataset.MAX_SIZE}
    assert len(kept) == 8 and {spec.shape for spec in kept} == set(dataset.SHAPES)


def png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_contact_sheet_puts_each_picture_in_its_cell() -> None:
    red, blue = png((220, 30, 30)), png((30, 60, 220))
    rows = [SheetRow("a red zxq", [red, blue]), SheetRow("a blue zxq", [blue, None])]
    with Image.open(io.BytesIO(contact_sheet(["base", "adapter"], rows))) as sheet:
        assert sheet.format == "PNG"
        assert sheet.size == (GAP + 2 * (CELL + GAP), LABEL_HEIGHT + GAP + 2 * (LABEL_HEIGHT + CELL + GAP))
        pixels = np.asarray(sheet.convert("RGB"))

    def centre(row: int, column: int) -> tuple[int, ...]:
        top = LABEL_HEIGHT + GAP + row * (LABEL_HEIGHT + CELL + GAP) + LABEL_HEIGHT + CELL // 2
        left = GAP + column * (CELL + GAP) + CELL // 2
        return tuple(int(v) for v in pixels[top, left])

    assert centre(0, 0) == (220, 30, 30) and centre(0, 1) == (30, 60, 220) and centre(1, 0) == (30, 60, 220)
    assert centre(1, 1) == (200, 200, 200), "a missing picture is a grey cell"
    with pytest.raises(ValueError, match="2 columns"):
        contact_sheet(["base", "adapter"], [SheetRow("short", [red])])
