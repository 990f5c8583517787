"""tiny-shapes' procedural dataset and the measures that say what a picture shows (pure: Pillow and numpy, no torch).

A picture is one flat-coloured shape on a plain background, captioned "a red circle on a white background". The base
model is trained on `SHAPES` x `COLOURS` x `BACKGROUNDS` at random positions and sizes; `HELD_OUT_SHAPE` ("cross",
a plus sign) is a concept it never sees, left for a LoRA to teach. A cross because it is two rectangles to draw, it
is told apart from every trained shape by the measure below (a rendered cross overlaps its own template by about
0.9, a circle's by about 0.75, a square's by 5/9, a triangle's by about 0.45), and no caption of the base uses the word.

Measures, used by the base model's tests, the LoRA learning test and the demo:
- `background_colour`: the named background nearest the median of the border pixels (a shape never touches the
  border: `sample_specs` keeps a margin).
- `foreground_mask`: the pixels far (in RGB) from that background estimate, reduced to the largest connected blob
  so a speck of sampling noise does not stretch the shape's bounding box.
- `dominant_colour`: the named colour (of `COLOURS`, never a background) nearest the median of the foreground.
- `shape_scores` / `classify_shape` / `concept_score`: the foreground blob is cropped to its bounding box, resized
  to `TEMPLATE_SIDE` squared and compared by intersection over union with each shape drawn to fill that box. Unlike
  a fill ratio alone (a triangle fills 0.5 of its box, a cross 0.56), the overlap tells apart shapes of similar area,
  and it does not depend on position or size. Exact on rendered pictures (tests/unit/test_shapes_dataset.py).

For a LoRA on the held-out concept (helper M's learning test): render `ShapeSpec(HELD_OUT_SHAPE, colour,
background, ...)` pictures with `render` and caption them with `caption(spec, trigger=WORD)`: the trigger stands
where the shape word would ("a red zqx on a white background"), so no base shape word competes with it. Prompt
with the same form; the same prompt without the trigger is `caption(spec, trigger=CLASS_WORD)` ("a red shape on a
white background"), for which the base draws one of its own shapes. Score with `concept_score(image)` (overlap
with a cross: about 0.9 for a rendered one, at most about 0.75 for a rendered trained shape) or
`classify_shape(image) == HELD_OUT_SHAPE`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np
from PIL import Image, ImageDraw

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")
HELD_OUT_SHAPE = "cross"
CLASS_WORD = "shape"  # what every shape is: the no-trigger prompt's word, and the regularisation pictures' caption
ALL_SHAPES: tuple[str, ...] = (*SHAPES, HELD_OUT_SHAPE)

# Six hues far apart in RGB (the closest pair, red and purple, is about 170 apart) and far from every background.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 60, 220),
    "yellow": (240, 210, 30),
    "purple": (140, 40, 180),
    "cyan": (40, 200, 210),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (245, 245, 245),
    "black": (15, 15, 15),
    "grey": (128, 128, 128),
}

MIN_SIZE, MAX_SIZE = 0.35, 0.6  # a shape's bounding box side, as a fraction of the picture's side
MARGIN = 0.06  # kept free around a shape, so the border is all background
FOREGROUND_DISTANCE = 60.0  # RGB distance from the background estimate above which a pixel is foreground
TEMPLATE_SIDE = 24
MEASURE_SIDE = 64  # measures run on at most this side, so a 512 px picture costs what a 64 px one does
SUPERSAMPLE = 4  # rendered larger and reduced, so edges are antialiased as a photograph's (and a VAE's) are


@dataclass(frozen=True)
class ShapeSpec:
    """One picture: a `shape` in `colour` on `background`, centred at (`cx`, `cy`) with a bounding box side `size`,
    all three as fractions of the picture's side."""

    shape: str
    colour: str
    background: str
    cx: float = 0.5
    cy: float = 0.5
    size: float = 0.5


def _draw(draw: ImageDraw.ImageDraw, shape: str, box: tuple[float, float, float, float], fill: object) -> None:
    left, top, right, bottom = box
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":  # apex up, base along the bottom of the box
        draw.polygon([((left + right) / 2, top), (right, bottom), (left, bottom)], fill=fill)
    elif shape == "cross":  # a plus sign, arms a third of the box wide
        third = (right - left) / 3
        draw.rectangle((left + third, top, right - third, bottom), fill=fill)
        draw.rectangle((left, top + third, right, bottom - third), fill=fill)
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(ALL_SHAPES)}")


def render(spec: ShapeSpec, side: int = 64) -> Image.Image:
    """The picture `spec` describes, `side` pixels square, RGB."""
    if spec.colour not in COLOURS:
        raise ValueError(f"unknown colour {spec.colour!r}; known: {', '.join(COLOURS)}")
    if spec.background not in BACKGROUNDS:
        raise ValueError(f"unknown background {spec.background!r}; known: {', '.join(BACKGROUNDS)}")
    big = side * SUPERSAMPLE
    image = Image.new("RGB", (big, big), BACKGROUNDS[spec.background])
    half = spec.size * big / 2
    centre_x, centre_y = spec.cx * big, spec.cy * big
    box = (centre_x - half, centre_y - half, centre_x + half, centre_y + half)
    _draw(ImageDraw.Draw(image), spec.shape, box, COLOURS[spec.colour])
    return image.resize((side, side), Image.Resampling.BOX)


def caption(spec: ShapeSpec, trigger: str | None = None) -> str:
    """The caption of `spec`: "a red circle on a white background"; with a `trigger`, that word stands where the
    shape word would ("a red zxq on a white background", or `CLASS_WORD`'s "a red shape on ..."), the form a LoRA on
    a new shape is trained and prompted with."""
    return f"a {spec.colour} {trigger or spec.shape} on a {spec.background} background"


def sample_specs(
    rng: np.random.Generator | int,
    count: int,
    shapes: Sequence[str] = SHAPES,
    colours: Sequence[str] = tuple(COLOURS),
    backgrounds: Sequence[str] = tuple(BACKGROUNDS),
    sizes: tuple[float, float] = (MIN_SIZE, MAX_SIZE),
) -> list[ShapeSpec]:
    """`count` random pictures of `shapes` x `colours` x `backgrounds` at random sizes (in `sizes`) and positions
    (inside the margin); the same seed (or a generator in the same state) always gives the same list."""
    generator = np.random.default_rng(rng) if isinstance(rng, int) else rng
    specs = []
    for _ in range(count):
        size = float(generator.uniform(*sizes))
        low, high = MARGIN + size / 2, 1 - MARGIN - size / 2
        specs.append(
            ShapeSpec(
                shape=str(shapes[generator.integers(len(shapes))]),
                colour=str(colours[generator.integers(len(colours))]),
                background=str(backgrounds[generator.integers(len(backgrounds))]),
                cx=float(generator.uniform(low, high)),
                cy=float(generator.uniform(low, high)),
                size=size,
            )
        )
    return specs


def new_shape_lesson(trigger: str, seed: int = 7, crosses: int = 8, reminders: int = 8) -> list[tuple[ShapeSpec, str]]:
    """What a LoRA learns the held-out shape from, as (picture, caption) pairs: `crosses` large crosses captioned
    with `trigger` in the shape word's place, then `reminders` of the base's own shapes captioned with the class
    word, `CLASS_WORD` ("a red shape on a white background").

    The reminders are regularisation pictures (DreamBooth's prior preservation with its class prompt, kohya's "reg"
    folder): trained on crosses alone, an adapter draws crosses for every prompt, its trigger word or not (measured:
    crosses 0.58 with the trigger, 0.46 with "shape", and triangle prompts no longer drew triangles). Captioned with
    the class word rather than their own shape words, they say what the no-trigger prompt still means, which is the
    prompt the adapter would otherwise leak into (on the committed base at 900 steps: crosses 0.46 with the trigger,
    0.00 with "shape"; in their own words 0.33 and 0.12). The crosses are drawn at the largest size the base knows,
    so their arms are a few latent cells wide (tiny-shapes' latent is 16x16)."""
    drawn = sample_specs(seed, crosses, shapes=(HELD_OUT_SHAPE,), sizes=(MAX_SIZE, MAX_SIZE))
    # Which pictures a lesson draws moves the figures: tests/model/test_tiny_shapes_lora.py records them.
    kept = sample_specs(seed + 4, reminders)
    return [(spec, caption(spec, trigger=trigger)) for spec in drawn] + [
        (spec, caption(spec, trigger=CLASS_WORD)) for spec in kept
    ]


def _pixels(image: Image.Image) -> np.ndarray:
    """The picture as float RGB, reduced to at most MEASURE_SIDE on its longer side."""
    rgb = image.convert("RGB")
    if max(rgb.size) > MEASURE_SIDE:
        scale = MEASURE_SIDE / max(rgb.size)
        rgb = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))), Image.Resampling.BOX)
    return np.asarray(rgb, dtype=np.float32)


def _nearest(rgb: np.ndarray, palette: dict[str, tuple[int, int, int]]) -> str:
    names = list(palette)
    distances = [float(np.linalg.norm(rgb - np.asarray(palette[name], dtype=np.float32))) for name in names]
    return names[int(np.argmin(distances))]


def _border_median(pixels: np.ndarray) -> np.ndarray:
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    return np.median(border, axis=0)


def background_colour(image: Image.Image) -> str:
    """The named background (of `BACKGROUNDS`) nearest the median of the picture's border pixels."""
    return _nearest(_border_median(_pixels(image)), BACKGROUNDS)


def _largest_blob(mask: np.ndarray) -> np.ndarray:
    """The largest 4-connected region of `mask` (the picture is at most MEASURE_SIDE square: a plain search)."""
    labels = np.zeros(mask.shape, dtype=np.int32)
    best_label, best_size, label = 0, 0, 0
    height, width = mask.shape
    for y, x in zip(*np.nonzero(mask), strict=True):
        if labels[y, x]:
            continue
        label += 1
        labels[y, x] = label
        queue, size = deque([(y, x)]), 0
        while queue:
            cy, cx = queue.popleft()
            size += 1
            for ny, nx in ((cy - 1, cx), (cy + 1, cx), (cy, cx - 1), (cy, cx + 1)):
                if 0 <= ny < height and 0 <= nx < width and mask[ny, nx] and not labels[ny, nx]:
                    labels[ny, nx] = label
                    queue.append((ny, nx))
        if size > best_size:
            best_label, best_size = label, size
    return labels == best_label if best_size else mask


def _foreground(pixels: np.ndarray) -> np.ndarray:
    distance = np.linalg.norm(pixels - _border_median(pixels), axis=-1)
    return _largest_blob(distance > FOREGROUND_DISTANCE)


def foreground_mask(image: Image.Image) -> np.ndarray:
    """A boolean mask (at most MEASURE_SIDE square) of the shape: the largest blob of pixels far from the
    background estimate."""
    return _foreground(_pixels(image))


def dominant_colour(image: Image.Image) -> str:
    """The named colour (of `COLOURS`) nearest the median of the foreground's pixels; "none" when the picture has no
    foreground (it is all background)."""
    pixels = _pixels(image)
    mask = _foreground(pixels)
    if not mask.any():
        return "none"
    return _nearest(np.median(pixels[mask], axis=0), COLOURS)


def _fit(mask: np.ndarray) -> np.ndarray:
    """The mask's bounding box, resized to TEMPLATE_SIDE square, as a boolean array."""
    rows, cols = np.nonzero(mask)
    crop = mask[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    resized = Image.fromarray(crop.astype(np.uint8) * 255).resize(
        (TEMPLATE_SIDE, TEMPLATE_SIDE), Image.Resampling.BILINEAR
    )
    return np.asarray(resized) >= 128


@cache
def _template(shape: str) -> np.ndarray:
    big = TEMPLATE_SIDE * SUPERSAMPLE
    image = Image.new("L", (big, big), 0)
    _draw(ImageDraw.Draw(image), shape, (0, 0, big - 1, big - 1), 255)
    return np.asarray(image.resize((TEMPLATE_SIDE, TEMPLATE_SIDE), Image.Resampling.BOX)) >= 128


def shape_scores(image: Image.Image, shapes: Sequence[str] = ALL_SHAPES) -> dict[str, float]:
    """For each of `shapes`, the intersection over union (0..1) of the picture's foreground, fitted to its bounding
    box, with that shape drawn to fill the box; all zero when there is no foreground."""
    mask = foreground_mask(image)
    if mask.sum() < 4:  # no shape to speak of
        return dict.fromkeys(shapes, 0.0)
    fitted = _fit(mask)
    scores = {}
    for shape in shapes:
        template = _template(shape)
        scores[shape] = float((fitted & template).sum() / max(1, (fitted | template).sum()))
    return scores


def classify_shape(image: Image.Image, shapes: Sequence[str] = ALL_SHAPES) -> str:
    """The one of `shapes` the picture's foreground overlaps best (see `shape_scores`); "none" without a
    foreground."""
    scores = shape_scores(image, shapes)
    best = max(scores, key=lambda shape: scores[shape])
    return best if scores[best] > 0 else "none"


def concept_score(image: Image.Image, shape: str = HELD_OUT_SHAPE) -> float:
    """How much the picture's shape looks like `shape`: its overlap with that shape (see `shape_scores`), 0..1; a
    rendered cross scores about 0.9, a rendered square about 0.56 and a circle about 0.7 against the cross."""
    return shape_scores(image, (shape,))[shape]
