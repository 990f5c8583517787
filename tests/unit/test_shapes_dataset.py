"""tiny-shapes' dataset: rendering, captions, sampling, and the measures being exact on rendered pictures."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from infra.shapes_dataset import (
    ALL_SHAPES,
    BACKGROUNDS,
    COLOURS,
    HELD_OUT_SHAPE,
    SHAPES,
    ShapeSpec,
    background_colour,
    caption,
    classify_shape,
    concept_score,
    dominant_colour,
    render,
    sample_specs,
    shape_scores,
)


def test_caption_reads_as_the_issue_says_and_a_trigger_takes_the_shapes_place() -> None:
    spec = ShapeSpec("circle", "red", "white")
    assert caption(spec) == "a red circle on a white background"
    assert caption(ShapeSpec(HELD_OUT_SHAPE, "blue", "black"), trigger="zqx") == "a blue zqx on a black background"


def test_the_held_out_shape_is_never_sampled_for_the_base() -> None:
    assert HELD_OUT_SHAPE not in SHAPES
    assert {spec.shape for spec in sample_specs(1, 300)} == set(SHAPES)


def test_sampling_is_deterministic_for_a_seed_and_differs_between_seeds() -> None:
    assert sample_specs(7, 20) == sample_specs(7, 20)
    assert sample_specs(7, 20) != sample_specs(8, 20)
    assert sample_specs(np.random.default_rng(7), 20) == sample_specs(7, 20)


def test_sampled_shapes_keep_clear_of_the_border() -> None:
    for spec in sample_specs(3, 200):
        border = np.asarray(render(spec, 64), dtype=np.int16)
        edges = np.concatenate([border[0], border[-1], border[:, 0], border[:, -1]])
        assert (edges == BACKGROUNDS[spec.background]).all(), spec


def test_render_draws_the_colour_on_the_background() -> None:
    pixels = np.asarray(render(ShapeSpec("square", "blue", "grey", size=0.5), 64))
    assert tuple(pixels[32, 32]) == COLOURS["blue"]
    assert tuple(pixels[2, 2]) == BACKGROUNDS["grey"]


@pytest.mark.parametrize("side", [32, 64, 256])
def test_measures_are_exact_on_rendered_pictures(side: int) -> None:
    # Every shape (the held-out one too) x colour x background at random sizes and positions.
    for spec in sample_specs(11, 150, shapes=ALL_SHAPES):
        image = render(spec, side)
        assert classify_shape(image) == spec.shape, (spec, shape_scores(image))
        assert dominant_colour(image) == spec.colour, spec
        assert background_colour(image) == spec.background, spec


def test_the_held_out_concept_scores_high_only_for_its_own_shape() -> None:
    cross = concept_score(render(ShapeSpec(HELD_OUT_SHAPE, "red", "white"), 64))
    others = [concept_score(render(ShapeSpec(shape, "red", "white"), 64)) for shape in SHAPES]
    assert cross > 0.85
    assert max(others) < cross - 0.1


def test_a_plain_picture_has_no_shape_and_no_colour() -> None:
    plain = Image.new("RGB", (64, 64), BACKGROUNDS["white"])
    assert dominant_colour(plain) == "none"
    assert classify_shape(plain) == "none"
    assert concept_score(plain) == 0.0


def test_a_speck_of_noise_does_not_change_the_shape() -> None:
    pixels = np.asarray(render(ShapeSpec("triangle", "green", "black", cx=0.6, cy=0.6, size=0.5), 64)).copy()
    pixels[2, 2] = COLOURS["red"]  # far from the shape: without the largest-blob step the box would reach it
    assert classify_shape(Image.fromarray(pixels)) == "triangle"
    assert dominant_colour(Image.fromarray(pixels)) == "green"


def test_unknown_names_are_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="known: red"):
        render(ShapeSpec("circle", "mauve", "white"))
    with pytest.raises(ValueError, match="known: circle"):
        render(ShapeSpec("hexagon", "red", "white"))
