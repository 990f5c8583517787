"""Aspect-ratio buckets: the sizes, the nearest bucket, the cover crop, and passes of one-bucket batches."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from workers.trainer.buckets import bucket_sizes, bucket_step, cover, crop_margin, nearest_bucket, pass_batches


@pytest.mark.parametrize(("resolution", "multiple", "step"), [(64, 8, 8), (64, 16, 16), (512, 8, 32), (1024, 8, 64)])
def test_the_step_follows_the_resolution_but_never_goes_below_the_family_multiple(
    resolution: int, multiple: int, step: int
) -> None:
    assert bucket_step(resolution, multiple) == step


@pytest.mark.parametrize(("resolution", "multiple"), [(64, 8), (64, 16), (512, 8), (1024, 8), (1024, 16)])
def test_buckets_hold_about_the_square_area_between_one_to_two_and_two_to_one(resolution: int, multiple: int) -> None:
    sizes = bucket_sizes(resolution, multiple)
    step = bucket_step(resolution, multiple)
    assert (resolution, resolution) in sizes
    assert len(sizes) >= 3  # more than the square: there is a landscape and a portrait bucket
    for width, height in sizes:
        assert width % step == 0 and height % step == 0
        assert 0.5 <= width / height <= 2.0
        # The nearest height to the area, on the step grid: within one step's worth of area.
        assert abs(width * height - resolution**2) <= width * step
    assert {(h, w) for w, h in sizes} == set(sizes)  # every landscape bucket has its portrait twin
    ratios = [w / h for w, h in sizes]
    assert ratios == sorted(ratios, reverse=True)  # widest first
    assert any(r >= 1.5 for r in ratios) and any(r <= 1 / 1.5 for r in ratios)


def test_no_bucket_side_exceeds_the_family_maximum() -> None:
    assert all(max(size) <= 1100 for size in bucket_sizes(1024, 8, max_side=1100))
    assert (1024, 1024) in bucket_sizes(1024, 8, max_side=1100)


def test_each_image_goes_to_the_bucket_nearest_its_aspect_ratio_in_log_ratio() -> None:
    sizes = bucket_sizes(64, 8)
    assert nearest_bucket((500, 500), sizes) == (64, 64)
    wide, tall = nearest_bucket((96, 48), sizes), nearest_bucket((48, 96), sizes)
    assert wide == (tall[1], tall[0]) and wide[0] > wide[1]
    best = min(abs(math.log(w / h) - math.log(2)) for w, h in sizes)
    assert abs(math.log(wide[0] / wide[1]) - math.log(2)) == best


def test_an_image_is_resized_to_cover_its_bucket_and_centre_cropped() -> None:
    placement = cover((200, 100), (88, 48))  # 2:1 into 11:6: the height binds
    assert placement.resized == (96, 48)
    assert (placement.left, placement.top) == (4, 0)
    assert placement.target == (88, 48)
    square = cover((64, 64), (64, 64))
    assert (square.resized, square.left, square.top) == ((64, 64), 0, 0)


def test_the_random_crop_margin_is_whole_multiples() -> None:
    assert crop_margin(64, 8) == 8
    assert crop_margin(88, 8) == 16
    assert crop_margin(1024, 64) == 128


def test_a_pass_sees_every_image_repeats_times_in_one_bucket_batches() -> None:
    bucket_of = ["square", "wide", "square", "tall", "square"]
    batches = pass_batches(bucket_of, repeats=3, batch_size=2, generator=torch.Generator().manual_seed(0))
    seen = Counter(index for batch in batches for index in batch)
    assert seen == {index: 3 for index in range(5)}
    assert all(1 <= len(batch) <= 2 for batch in batches)
    assert all(len({bucket_of[i] for i in batch}) == 1 for batch in batches)
    # Nine square entries make four full batches and one of one; three wide and three tall make two each.
    assert sorted(len(b) for b in batches) == [1, 1, 1, 2, 2, 2, 2, 2, 2]


def test_a_pass_is_drawn_from_the_generator_alone() -> None:
    def draw(seed: int) -> list[list[int]]:
        return pass_batches(["a"] * 6, repeats=2, batch_size=4, generator=torch.Generator().manual_seed(seed))

    assert draw(1) == draw(1)
    assert draw(1) != draw(2)
