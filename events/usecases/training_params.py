"""Turning what a user asked for into the concrete parameters of one training. Pure.

Two ways in, documented in docs/api-compat.md:
- the custom-models API: `trainingStrength` (0..10) and `trainingSpeed` (fast, high_quality) pick a preset;
- the Scenario-style API: explicit `parameters` (stored on the model by PUT, or sent with the training request), whose
  unset fields take the Scenario-style API's documented defaults for the base model's family (FAMILY_DEFAULTS).
Precedence, lowest first: defaults (preset or the Scenario-style API) < the model's stored parameters < the request's.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from events.training import MAX_RANK, MAX_TRAIN_STEPS, TrainingParameters
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


# The base-model families, in the Scenario-style API's words (infra.base_models.Family's values: events stays pure).
SD15 = "sd-1_5"
SDXL = "sd-xl"
FLUX = "flux.1"

# Parameters only some families' trainers take. Sent for another family they are accepted and ignored, as the
# Scenario-style parameters without effect are (IGNORED_PARAMETERS in functions/api/schemas/models.py): a client
# that sends one body to every family keeps working.
FAMILY_ONLY: dict[str, frozenset[str]] = {
    SD15: frozenset({"numTextTrainSteps", "numUNetTrainSteps", "textEncoderTrainingRatio", "optimizeFor"}),
    SDXL: frozenset({"optimizeFor"}),
    # FLUX trains no prior-preservation class images (the Scenario-style API: classPrompt is SD 1.5's,
    # priorLossWeight SD 1.5's and SDXL's), and its steps are not split between text encoders and transformer.
    FLUX: frozenset(
        {
            "classPrompt",
            "priorLossWeight",
            "numClassImages",
            "numTextTrainSteps",
            "numUNetTrainSteps",
            "textEncoderTrainingRatio",
        }
    ),
}
# Inputs that are not TrainingParameters fields: folded into maxTrainSteps / numTextTrainSteps here.
STEP_INPUTS = ("numUNetTrainSteps", "textEncoderTrainingRatio")


@dataclass(frozen=True)
class FamilyDefaults:
    """The Scenario-style API's documented defaults and limits of one family (its explicit-`parameters` path)."""

    learning_rate: float
    learning_rate_text_encoder: float
    rank: int
    steps_per_image: float
    max_steps: int = MAX_TRAIN_STEPS
    rank_range: tuple[int, int] = (1, MAX_RANK)
    # When the text-encoder rate is set above 0, the range it must be in (FLUX's CLIP LoRA).
    text_encoder_rate_range: tuple[float, float] | None = None
    # Training resolutions are multiples of this (FLUX packs 2x2 latents of its 8x VAE: 16).
    resolution_multiple: int = 8

    def default_steps(self, image_count: int) -> int:
        """maxTrainSteps when nothing says otherwise, within the family's cap."""
        return min(self.max_steps, max(1, round(image_count * self.steps_per_image)))


FAMILY_DEFAULTS: dict[str, FamilyDefaults] = {
    # round(images * 225 / 3): the SD 1.5 rule, as before families.
    SD15: FamilyDefaults(learning_rate=5e-6, learning_rate_text_encoder=0.0, rank=16, steps_per_image=75),
    SDXL: FamilyDefaults(learning_rate=5e-6, learning_rate_text_encoder=5e-5, rank=64, steps_per_image=175),
    # FLUX's CLIP LoRA is off unless asked for (diffusers' FLUX LoRA script trains the transformer alone by
    # default: the text encoders' adapters cost memory for little likeness); when set, the documented range.
    FLUX: FamilyDefaults(
        learning_rate=1e-4,
        learning_rate_text_encoder=0.0,
        rank=16,
        steps_per_image=100,
        max_steps=10_000,
        rank_range=(2, 64),
        text_encoder_rate_range=(1e-6, 1e-3),
        resolution_multiple=16,
    ),
}


def family_defaults(family: str) -> FamilyDefaults:
    """The defaults of a family (SD 1.5's for a family this module does not know)."""
    return FAMILY_DEFAULTS.get(family, FAMILY_DEFAULTS[SD15])


@dataclass(frozen=True)
class BaseDefaults:
    """What the base model contributes: its family, the training resolution and the sampling steps, and whether the
    deployment has a captioning model (then images without a caption are captioned automatically by default)."""

    resolution: int
    sample_steps: int
    family: str = SD15
    captioning_available: bool = False


def _explicit_steps(explicit: dict[str, Any], family: str, image_count: int, epochs_default: int) -> int | None:
    """maxTrainSteps as the explicit parameters imply it, or None when they leave it to the defaults.

    SDXL: numTextTrainSteps + numUNetTrainSteps (the Scenario-style API's replacement for maxTrainSteps). FLUX:
    nbEpochs x ceil(images x nbRepeats / batchSize) when epochs or repeats are given (kohya's and ai-toolkit's
    repeats: each epoch sees every image nbRepeats times)."""
    if family == SDXL and explicit.get("numUNetTrainSteps") is not None:
        total = int(explicit.get("numTextTrainSteps") or 0) + int(explicit["numUNetTrainSteps"])
        given = explicit.get("maxTrainSteps")
        if given is not None and int(given) != total:
            raise ParameterError(
                f"parameters.maxTrainSteps: {given} is not numTextTrainSteps + numUNetTrainSteps ({total}); "
                "send one or the other (SDXL: numTextTrainSteps and numUNetTrainSteps)",
                "maxTrainSteps",
            )
        return total
    if explicit.get("maxTrainSteps") is not None:
        return int(explicit["maxTrainSteps"])
    if family == FLUX and (explicit.get("nbRepeats") is not None or explicit.get("nbEpochs") is not None):
        epochs = int(explicit.get("nbEpochs") or epochs_default)
        repeats = int(explicit.get("nbRepeats") or 1)
        batch = int(explicit.get("batchSize") or 1)
        return epochs * math.ceil(image_count * repeats / batch)
    return None


def _check_family_limits(values: dict[str, Any], family: str, limits: FamilyDefaults) -> None:
    low, high = limits.rank_range
    if not low <= int(values["rank"]) <= high:
        raise ParameterError(f"parameters.rank: {family} LoRA ranks are {low} to {high}", "rank")
    if int(values["maxTrainSteps"]) > limits.max_steps:
        raise ParameterError(
            f"parameters.maxTrainSteps: at most {limits.max_steps} for {family} LoRA training", "maxTrainSteps"
        )
    resolution = values.get("resolution")
    if resolution is not None and int(resolution) % limits.resolution_multiple:
        raise ParameterError(
            f"parameters.resolution: {family} trains at multiples of {limits.resolution_multiple} pixels", "resolution"
        )
    rate = float(values["learningRateTextEncoder"])
    if limits.text_encoder_rate_range and rate > 0:
        low_rate, high_rate = limits.text_encoder_rate_range
        if not low_rate <= rate <= high_rate:
            raise ParameterError(
                f"parameters.learningRateTextEncoder: {family} takes 0 (text encoders frozen) or "
                f"{low_rate:g} to {high_rate:g}",
                "learningRateTextEncoder",
            )


def check_family_parameters(parameters: dict[str, Any], family: str) -> None:
    """The family's limits on the parameters given (rank range, step cap, text-encoder rate): a model's stored
    parameters are checked when they are set, not first when a training starts. `ParameterError` otherwise."""
    limits = family_defaults(family)
    given = {
        name: parameters[name]
        for name in ("rank", "maxTrainSteps", "learningRateTextEncoder", "resolution")
        if name in parameters
    }
    _check_family_limits(
        {"rank": limits.rank, "maxTrainSteps": 1, "learningRateTextEncoder": 0.0, **given}, family, limits
    )


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
    """The concrete parameters of a training of `image_count` images on a base of `base.family`."""
    family = base.family
    limits = family_defaults(family)
    explicit = {**(model_parameters or {}), **(request_parameters or {})}
    explicit = {name: value for name, value in explicit.items() if name not in FAMILY_ONLY.get(family, ())}
    uses_preset = strength is not None or speed is not None or not explicit
    if uses_preset:
        # The custom-models presets mean the same for every family (their rates and ranks are within each
        # family's range); only the step count is capped at the family's maximum.
        preset = PRESETS[speed or DEFAULT_SPEED]
        factor = strength_factor(DEFAULT_STRENGTH if strength is None else strength)
        defaults: dict[str, Any] = {
            "learningRate": preset.learning_rate,
            "learningRateTextEncoder": 0.0,
            "rank": preset.rank,
            "lrScheduler": preset.lr_scheduler,
            "maxTrainSteps": min(limits.max_steps, max(1, math.ceil(image_count * preset.steps_per_image * factor))),
        }
    else:
        defaults = {
            "learningRate": limits.learning_rate,
            "learningRateTextEncoder": limits.learning_rate_text_encoder,
            "rank": limits.rank,
            "lrScheduler": "constant",
            "maxTrainSteps": limits.default_steps(image_count),
        }
    steps = _explicit_steps(explicit, family, image_count, DEFAULT_EPOCHS)
    if steps is not None:
        explicit["maxTrainSteps"] = steps
    steps = int(explicit.get("maxTrainSteps", defaults["maxTrainSteps"]))
    ratio = explicit.pop("textEncoderTrainingRatio", None)
    if ratio is not None and explicit.get("numTextTrainSteps") is None and ratio > 0:
        # The legacy split (SDXL): "for 100 steps and 0.2, the text encoder trains 20 steps, then the UNet 80".
        explicit["numTextTrainSteps"] = round(float(ratio) * steps)
    explicit.pop("numUNetTrainSteps", None)
    concept = explicit.get("conceptPrompt") or trigger_word
    values: dict[str, Any] = {
        **defaults,
        "batchSize": 1,
        "nbRepeats": 1,
        "nbEpochs": min(DEFAULT_EPOCHS, steps),
        "seed": secrets.randbelow(2**32),
        "resolution": base.resolution,
        "conceptPrompt": concept,
        "samplePrompts": [concept],
        "sampleSteps": base.sample_steps,
        "autoCaption": base.captioning_available,
        **explicit,
    }
    if values.get("classPrompt") and "numClassImages" not in explicit:
        values["numClassImages"] = min(200, max(image_count, 4))
    _check_family_limits(values, family, limits)
    if values.get("autoCaption") and not base.captioning_available:
        raise ParameterError(
            "parameters.autoCaption: this deployment has no captioning model (LF_CAPTIONING_MODEL); describe "
            "the images instead (their description)",
            "autoCaption",
        )
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
