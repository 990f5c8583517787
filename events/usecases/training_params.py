"""Turning what a user asked for into the concrete parameters of one training. Pure.

Two ways in, documented in docs/api-compat.md:
- the custom-models API: `trainingStrength` (0..10) and `trainingSpeed` (fast, high_quality) pick a preset;
- the Scenario-style API: explicit `parameters` (stored on the model by PUT, or sent with the training request), whose
  unset fields take the Scenario-style API's documented defaults.
Precedence, lowest first: defaults (preset or the Scenario-style API) < the model's stored parameters < the request's.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from events.training import TrainingParameters
from events.validation import error_message, error_path

TrainingSpeed = Literal["fast", "high_quality"]
DEFAULT_STRENGTH = 5
DEFAULT_SPEED: TrainingSpeed = "fast"
DEFAULT_EPOCHS = 4


@dataclass(frozen=True)
class Preset:
    """What a training speed means."""

    learning_rate: float
    rank: int
    steps_per_image: int
    lr_scheduler: str


PRESETS: dict[str, Preset] = {
    "fast": Preset(learning_rate=2e-4, rank=8, steps_per_image=40, lr_scheduler="constant"),
    "high_quality": Preset(learning_rate=1e-4, rank=16, steps_per_image=100, lr_scheduler="cosine"),
}


def strength_factor(strength: int) -> float:
    """How many of the preset's steps a strength asks for: 0 -> 0.4x, 5 -> 1.0x, 10 -> 1.6x."""
    return 0.4 + 0.12 * strength


def scenario_style_default_steps(image_count: int) -> int:
    """The Scenario-style API's default for SD 1.5: round((number of training images * 225) / 3)."""
    return round(image_count * 225 / 3)


class ParameterError(ValueError):
    """The combined parameters are not a valid training."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class BaseDefaults:
    """What the base model contributes: the training resolution and the sampling steps."""

    resolution: int
    sample_steps: int


def resolve_parameters(
    *,
    image_count: int,
    trigger_word: str,
    base: BaseDefaults,
    strength: int | None = None,
    speed: str | None = None,
    model_parameters: dict[str, Any] | None = None,
    request_parameters: dict[str, Any] | None = None,
) -> TrainingParameters:
    """The concrete parameters of a training of `image_count` images."""
    explicit = {**(model_parameters or {}), **(request_parameters or {})}
    uses_preset = strength is not None or speed is not None or not explicit
    if uses_preset:
        preset = PRESETS[speed or DEFAULT_SPEED]
        factor = strength_factor(DEFAULT_STRENGTH if strength is None else strength)
        defaults: dict[str, Any] = {
            "learningRate": preset.learning_rate,
            "rank": preset.rank,
            "lrScheduler": preset.lr_scheduler,
            "maxTrainSteps": max(1, math.ceil(image_count * preset.steps_per_image * factor)),
        }
    else:
        defaults = {
            "learningRate": 5e-6,  # the Scenario-style API's SD 1.5 default
            "rank": 16,
            "lrScheduler": "constant",
            "maxTrainSteps": max(1, scenario_style_default_steps(image_count)),
        }
    steps = int(explicit.get("maxTrainSteps", defaults["maxTrainSteps"]))
    concept = explicit.get("conceptPrompt") or trigger_word
    values: dict[str, Any] = {
        **defaults,
        "learningRateTextEncoder": 0.0,
        "batchSize": 1,
        "nbRepeats": 1,
        "nbEpochs": min(DEFAULT_EPOCHS, steps),
        "seed": secrets.randbelow(2**32),
        "resolution": base.resolution,
        "conceptPrompt": concept,
        "samplePrompts": [concept],
        "sampleSteps": base.sample_steps,
        **explicit,
    }
    if values.get("classPrompt") and "numClassImages" not in explicit:
        values["numClassImages"] = min(200, max(image_count, 4))
    try:
        return TrainingParameters.model_validate(values)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = error_path(first) or None
        message = error_message(first, "invalid parameters")
        raise ParameterError(f"parameters{'.' + field if field else ''}: {message}", field) from exc


def estimated_seconds(parameters: TrainingParameters, steps_per_second: float) -> float:
    """A rough duration for `estimatedCompletion`: the steps at the base model's typical speed."""
    return parameters.maxTrainSteps * parameters.batchSize / max(steps_per_second, 1e-3)
