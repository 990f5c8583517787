"""One PNG that shows generations side by side: a row per prompt, a column per way of generating it (the demo's base
model against its trained adapter, same prompts and seeds), with small text labels."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

CELL = 128  # pixels a picture is shown at (tiny-shapes makes 64 px: scaled up, nearest, so its pixels stay sharp)
GAP = 6
LABEL_HEIGHT = 16
BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)
MISSING = (200, 200, 200)


@dataclass(frozen=True)
class SheetRow:
    """One row: its label (the prompt) and a picture per column, as encoded bytes; None where a job made none."""

    label: str
    pictures: Sequence[bytes | None]


def _fit_text(draw: ImageDraw.ImageDraw, text: str, width: int, font: ImageFont.ImageFont) -> str:
    """`text`, cut with an ellipsis to fit `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text + "..."


def contact_sheet(columns: Sequence[str], rows: Sequence[SheetRow], cell: int = CELL) -> bytes:
    """The sheet as PNG bytes: a header of column labels, then for each row its label above its pictures."""
    font = ImageFont.load_default()
    width = GAP + len(columns) * (cell + GAP)
    height = LABEL_HEIGHT + GAP + len(rows) * (LABEL_HEIGHT + cell + GAP)
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for index, column in enumerate(columns):
        draw.text((GAP + index * (cell + GAP), 2), _fit_text(draw, column, cell, font), fill=TEXT, font=font)
    top = LABEL_HEIGHT + GAP
    for row in rows:
        if len(row.pictures) != len(columns):
            raise ValueError(f"row {row.label!r} has {len(row.pictures)} pictures for {len(columns)} columns")
        draw.text((GAP, top + 2), _fit_text(draw, row.label, width - 2 * GAP, font), fill=TEXT, font=font)
        for index, picture in enumerate(row.pictures):
            left = GAP + index * (cell + GAP)
            if picture is None:
                draw.rectangle((left, top + LABEL_HEIGHT, left + cell - 1, top + LABEL_HEIGHT + cell - 1), fill=MISSING)
                draw.text((left + 4, top + LABEL_HEIGHT + 4), "no image", fill=TEXT, font=font)
                continue
            with Image.open(io.BytesIO(picture)) as image:
                shown = image.convert("RGB").resize((cell, cell), Image.Resampling.NEAREST)
            sheet.paste(shown, (left, top + LABEL_HEIGHT))
        top += LABEL_HEIGHT + cell + GAP
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return buffer.getvalue()
