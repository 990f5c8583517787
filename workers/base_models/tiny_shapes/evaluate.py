"""How well tiny-shapes' prompts steer its pictures: generate every colour x shape (x background) prompt and measure
each picture with `dataset.py`'s measures. Used by its model test and by bench/tiny_shapes_accuracy.py."""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from diffusers import StableDiffusionPipeline
from PIL import Image

from infra.shapes_dataset import (
    BACKGROUNDS,
    COLOURS,
    SHAPES,
    ShapeSpec,
    background_colour,
    caption,
    classify_shape,
    dominant_colour,
)


@dataclass
class Steering:
    """Per prompt word, the share of pictures whose measure matched it; and the pictures themselves."""

    specs: list[ShapeSpec]
    images: list[Image.Image]
    colour: dict[str, float] = field(default_factory=dict)
    shape: dict[str, float] = field(default_factory=dict)
    background: dict[str, float] = field(default_factory=dict)

    @staticmethod
    def overall(per_word: dict[str, float]) -> float:
        """The mean over words (every word has as many pictures, so this is the overall accuracy too)."""
        return sum(per_word.values()) / len(per_word)


def _accuracy(pairs: Sequence[tuple[str, bool]]) -> dict[str, float]:
    hits: dict[str, list[bool]] = defaultdict(list)
    for word, hit in pairs:
        hits[word].append(hit)
    return {word: sum(values) / len(values) for word, values in hits.items()}


def prompt_grid(backgrounds: Sequence[str] = tuple(BACKGROUNDS), seeds: int = 1) -> list[ShapeSpec]:
    """Every colour x shape x background, `seeds` times each (the positions are the sampler's, not the spec's)."""
    combos = itertools.product(COLOURS, SHAPES, backgrounds, range(seeds))
    return [ShapeSpec(shape, colour, background) for colour, shape, background, _ in combos]


def steering(
    pipeline: StableDiffusionPipeline,
    specs: Sequence[ShapeSpec],
    *,
    steps: int,
    guidance: float,
    side: int = 64,
    seed: int = 0,
) -> Steering:
    """Generate one picture per spec's caption in a single batched call (seeded), and measure colour, shape and
    background against the words of its prompt."""
    generator = torch.Generator("cpu").manual_seed(seed)
    with torch.no_grad():
        images = pipeline(
            prompt=[caption(spec) for spec in specs],
            width=side,
            height=side,
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=generator,
        ).images
    return Steering(
        specs=list(specs),
        images=images,
        colour=_accuracy([(s.colour, dominant_colour(im) == s.colour) for s, im in zip(specs, images, strict=True)]),
        shape=_accuracy(
            [(s.shape, classify_shape(im, SHAPES) == s.shape) for s, im in zip(specs, images, strict=True)]
        ),
        background=_accuracy(
            [(s.background, background_colour(im) == s.background) for s, im in zip(specs, images, strict=True)]
        ),
    )


def contact_sheet(images: Sequence[Image.Image], columns: int, scale: int = 2) -> Image.Image:
    """The pictures in a grid, `columns` wide, each enlarged `scale` times (nearest, so pixels stay visible)."""
    width, height = images[0].size
    rows = -(-len(images) // columns)
    sheet = Image.new("RGB", (columns * width * scale, rows * height * scale), (255, 255, 255))
    for i, image in enumerate(images):
        tile = image.resize((width * scale, height * scale), Image.Resampling.NEAREST)
        sheet.paste(tile, ((i % columns) * width * scale, (i // columns) * height * scale))
    return sheet
