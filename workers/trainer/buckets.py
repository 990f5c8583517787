"""Aspect-ratio buckets: training sizes near each image's own shape instead of one square crop. Pure.

A bucket is a (width, height) of about resolution^2 pixels, sides multiples of a step, aspect ratios from 1:2 to
2:1. The step is the family's pixel multiple or resolution / 16 rounded down to it, whichever is larger: 64 px at
1024 (kohya's habit for SDXL), 32 px at 512, and the bare multiple (8 or 16 px) for the tiny models at 64 px, where
a 64 px step would leave only the square.

Each image goes to the bucket nearest its aspect ratio (distance in log-ratio, so 1:2 and 2:1 are as far from the
square), is resized to cover the bucket and centre-cropped to it; batches are drawn from one bucket at a time, so
every batch's latents have one shape.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import torch

Size = tuple[int, int]  # (width, height) in pixels, PIL's order

MAX_RATIO = 2.0
STEPS_PER_RESOLUTION = 16


def bucket_step(resolution: int, multiple: int) -> int:
    """The side step of the buckets at `resolution` for a family whose sides are multiples of `multiple`."""
    return max(multiple, resolution // STEPS_PER_RESOLUTION // multiple * multiple)


def bucket_sizes(
    resolution: int, multiple: int, max_side: int | None = None, max_ratio: float = MAX_RATIO
) -> list[Size]:
    """The buckets of about `resolution`^2 pixels, widest first: for each width from the square up (multiples of
    the step) the height that keeps the area nearest, kept when the ratio is at most `max_ratio` and no side
    exceeds `max_side`, with its portrait twin. The square (resolution, resolution) is always one (resolution is a
    multiple of 8, and of 16 for families that need it, as the API checks)."""
    step = bucket_step(resolution, multiple)
    area = resolution * resolution
    limit = max_side or 2 * resolution
    sizes: set[Size] = {(resolution, resolution)}
    width = resolution + step
    while width <= limit:
        height = max(step, round(area / width / step) * step)
        if width / height <= max_ratio:
            sizes.update({(width, height), (height, width)})
        width += step
    return sorted(sizes, key=lambda size: (-size[0] / size[1], size))


def nearest_bucket(size: Size, buckets: Sequence[Size]) -> Size:
    """The bucket whose aspect ratio is nearest `size`'s, in log-ratio; ties go to the larger area, then the
    first listed."""
    ratio = math.log(size[0] / size[1])
    return min(buckets, key=lambda b: (abs(math.log(b[0] / b[1]) - ratio), -b[0] * b[1]))


@dataclass(frozen=True)
class Placement:
    """How one image becomes a training input of `target` size: resized to `resized` (covering the target), then
    the `target` box at (`left`, `top`) cut out of it."""

    resized: Size
    left: int
    top: int
    target: Size


def cover(size: Size, target: Size) -> Placement:
    """Resize `size` to the smallest size covering `target` (aspect kept), centre-cropped to `target`."""
    scale = max(target[0] / size[0], target[1] / size[1])
    resized = (max(target[0], round(size[0] * scale)), max(target[1], round(size[1] * scale)))
    return Placement(resized, (resized[0] - target[0]) // 2, (resized[1] - target[1]) // 2, target)


def crop_margin(side: int, multiple: int, fraction: float = 0.125) -> int:
    """The extra pixels encoded along a side of `side` pixels for random crops: `fraction` of it, rounded up to
    `multiple` (so the crop moves in whole latent cells)."""
    return int(math.ceil(side * fraction / multiple) * multiple)


def pass_batches(
    buckets: Sequence[Hashable], repeats: int, batch_size: int, generator: torch.Generator
) -> list[list[int]]:
    """One pass over the data: every image index `repeats` times, shuffled, then split into batches of one
    bucket each (a bucket's last batch may be smaller), the batches in shuffled order. `buckets[i]` is image
    i's bucket. Without replacement within a pass; all randomness from `generator`."""
    entries = [index for _ in range(repeats) for index in range(len(buckets))]
    order = [entries[i] for i in torch.randperm(len(entries), generator=generator).tolist()]
    by_bucket: dict[Hashable, list[int]] = {}
    for index in order:
        by_bucket.setdefault(buckets[index], []).append(index)
    batches = [
        members[start : start + batch_size]
        for members in by_bucket.values()
        for start in range(0, len(members), batch_size)
    ]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
