"""The FLUX.1 training family on tiny-flux: what `optimizeFor` selects, the conditioning, the noise levels, and that
a short training learns and its exported adapter generates through the generator's own adapter path exactly as the
trainer's pipeline does.

Generations are compared in latent space, as for SD (tests/model/test_training_learns.py): tiny-flux's VAE is random,
so decoded colours say nothing; the transformer's output latents are what the adapter changes.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from diffusers import FluxPipeline
from peft.tuners.tuners_utils import BaseTunerLayer

from events.generation import AdapterRef
from events.training import TrainingParameters
from infra.base_models import FLUX_ATTENTION_TARGETS, TINY_FLUX, TINY_FLUX_TARGETS
from tests.model.test_training_learns import Recorder, distance, red_images
from workers.generator.adapters import AdapterCache
from workers.trainer.families.flux import FluxFamily, target_module_names
from workers.trainer.loop import LoraTrainer

FluxFactory = Callable[[], FluxPipeline]
PROMPT = "a photo of lfzq"


def flux_params(**overrides: object) -> TrainingParameters:
    values: dict[str, object] = dict(
        learningRate=6e-3,
        learningRateTextEncoder=0,
        maxTrainSteps=40,
        rank=8,
        batchSize=2,
        nbEpochs=2,
        nbRepeats=1,
        seed=1,
        resolution=64,
        conceptPrompt=PROMPT,
    )
    values.update(overrides)
    return TrainingParameters(**values)  # type: ignore[arg-type]


def flux_latents(pipeline: FluxPipeline, prompt: str, count: int = 4, steps: int = 10) -> torch.Tensor:
    """The transformer's output latents at 64 px from a fixed seed, unpacked to (B, C, 8, 8)."""
    with torch.no_grad():
        packed = pipeline(
            prompt,
            width=64,
            height=64,
            num_inference_steps=steps,
            num_images_per_prompt=count,
            guidance_scale=TINY_FLUX.default_guidance,
            max_sequence_length=pipeline.tokenizer_2.model_max_length,
            generator=torch.Generator("cpu").manual_seed(0),
            output_type="latent",
        ).images
    return pipeline._unpack_latents(packed, 64, 64, pipeline.vae_scale_factor)


# --- optimizeFor: which modules each set adapts -----------------------------------------------------------------


def flux_module_names(double: int, single: int) -> list[str]:
    """The module names of a FLUX transformer's adaptable layers (as FluxTransformer2DModel names them)."""
    names = ["x_embedder", "context_embedder", "proj_out"]
    for index in range(double):
        block = f"transformer_blocks.{index}"
        names += [f"{block}.attn.{p}" for p in FLUX_ATTENTION_TARGETS]
        names += [f"{block}.ff.net.2", f"{block}.ff_context.net.2"]
    for index in range(single):
        block = f"single_transformer_blocks.{index}"
        names += [f"{block}.attn.to_q", f"{block}.attn.to_k", f"{block}.attn.to_v", f"{block}.proj_mlp"]
        names += [f"{block}.proj_out"]
    return names


def blocks_of(names: list[str]) -> tuple[set[int], set[int]]:
    double = {int(n.split(".")[1]) for n in names if n.startswith("transformer_blocks.")}
    single = {int(n.split(".")[1]) for n in names if n.startswith("single_transformer_blocks.")}
    return double, single


def test_optimize_for_on_flux1_dev_block_counts() -> None:
    names = flux_module_names(19, 38)

    likeness = target_module_names(names, FLUX_ATTENTION_TARGETS, "likeness", 19, 38)
    assert blocks_of(likeness) == ({0, 1}, set(range(7, 21)))
    # Within the chosen blocks, exactly the attention targets: no feed-forwards, no single blocks' MLPs.
    assert "transformer_blocks.1.attn.add_q_proj" in likeness and "transformer_blocks.1.ff.net.2" not in likeness
    assert (
        "single_transformer_blocks.7.attn.to_q" in likeness and "single_transformer_blocks.7.proj_mlp" not in likeness
    )
    assert "single_transformer_blocks.21.attn.to_q" not in likeness and "transformer_blocks.2.attn.to_q" not in likeness

    every = target_module_names(names, FLUX_ATTENTION_TARGETS, "all", 19, 38)
    assert blocks_of(every) == (set(range(19)), set(range(38)))
    assert len(every) == 19 * 8 + 38 * 3
    # FLUX.1's targets are attention projections only, which exist only inside blocks: "none" is "all".
    assert target_module_names(names, FLUX_ATTENTION_TARGETS, "none", 19, 38) == every
    assert target_module_names(names, FLUX_ATTENTION_TARGETS, None, 19, 38) == every


def test_optimize_for_on_tiny_flux(load_tiny_flux: FluxFactory) -> None:
    transformer = load_tiny_flux().transformer
    names = [name for name, _ in transformer.named_modules()]

    def select(optimize_for: str | None) -> list[str]:
        return target_module_names(names, TINY_FLUX_TARGETS, optimize_for, 2, 4)  # type: ignore[arg-type]

    # The likeness ranges scaled to 2 double and 4 single blocks: the first double block, the second single one.
    assert blocks_of(select("likeness")) == ({0}, {1})
    assert blocks_of(select("all")) == ({0, 1}, {0, 1, 2, 3})
    # tiny-flux's targets include `proj_out`: without block selection the transformer's final projection is
    # adapted too, so "none" is "all" plus that one module.
    assert set(select("none")) - set(select("all")) == {"proj_out"}
    assert select(None) == select("none")
    assert all(isinstance(transformer.get_submodule(name), torch.nn.Linear) for name in select("none"))


# --- conditioning and noise levels -----------------------------------------------------------------------------


def test_embed_gives_t5_states_clip_pooled_and_text_ids_and_each_caption_its_own(load_tiny_flux: FluxFactory) -> None:
    pipeline = load_tiny_flux()
    family = FluxFamily(pipeline, TINY_FLUX, flux_params(learningRateTextEncoder=1e-4), torch.device("cpu"))
    conditioning = family.embed([PROMPT, "a photo of lfzq on a beach"]).tensors
    tokens = pipeline.tokenizer_2.model_max_length
    assert conditioning["hidden"].shape == (2, tokens, 32)
    assert conditioning["pooled"].shape == (2, 32)
    assert conditioning["text_ids"].shape == (tokens, 3)
    assert all(t.device.type == "cpu" and t.dtype == torch.float32 for t in conditioning.values())
    assert not torch.allclose(conditioning["hidden"][0], conditioning["hidden"][1])
    assert not torch.allclose(conditioning["pooled"][0], conditioning["pooled"][1])

    # With CLIP adapted, its pooled output carries a graph; T5 (frozen, never adapted) does not.
    parameters = family.add_adapters(4, train_text_encoders=True, targets=TINY_FLUX_TARGETS)
    assert parameters.text and all(p.dtype == torch.float32 for p in parameters.text)
    assert not any(isinstance(m, BaseTunerLayer) for m in pipeline.text_encoder_2.modules())
    with_grad = family.embed([PROMPT], grad=True).tensors
    assert with_grad["pooled"].requires_grad and not with_grad["hidden"].requires_grad


def test_training_noise_levels_are_the_pipelines_shifted_schedule(load_tiny_flux: FluxFactory) -> None:
    pipeline = load_tiny_flux()
    family = FluxFamily(pipeline, TINY_FLUX, flux_params(), torch.device("cpu"))
    u = torch.tensor([0.9, 0.5, 0.25, 0.1])
    sequence_length = 64  # a 128 px image: 8 x 8 packed tokens
    mu = family.scheduler.config.base_shift + (sequence_length - 256) * (
        (family.scheduler.config.max_shift - family.scheduler.config.base_shift) / (4096 - 256)
    )
    pipeline.scheduler.set_timesteps(sigmas=u.tolist(), mu=mu)  # what sampling at that size uses
    assert torch.allclose(family.sigmas(u, sequence_length), pipeline.scheduler.sigmas[:-1], atol=1e-6)
    # Larger images are trained noisier, as they are sampled.
    assert bool((family.sigmas(u, 4096) > family.sigmas(u, 64)).all())


def test_the_loss_draws_only_from_the_given_generator(load_tiny_flux: FluxFactory) -> None:
    family = FluxFamily(load_tiny_flux(), TINY_FLUX, flux_params(), torch.device("cpu"))
    latents = torch.randn(2, 4, 8, 16, generator=torch.Generator().manual_seed(3))  # a 64 x 128 bucket
    conditioning = family.embed([PROMPT, PROMPT])
    first, second = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    torch.manual_seed(0)
    loss = family.loss(latents, conditioning, [], first)
    torch.manual_seed(1)  # the global RNG plays no part
    assert float(family.loss(latents, conditioning, [], second).detach()) == float(loss.detach())
    assert torch.equal(first.get_state(), second.get_state())


# --- training, export, reload ----------------------------------------------------------------------------------


def test_a_short_flux_training_learns_and_its_export_generates_as_the_trainer_does(
    load_tiny_flux: FluxFactory,
) -> None:
    trainer = LoraTrainer(load_tiny_flux(), flux_params(), torch.device("cpu"), TINY_FLUX)
    assert isinstance(trainer.family, FluxFamily)
    trainer.prepare(red_images(4))
    recorder = Recorder()
    outcome = trainer.run(recorder)
    assert outcome.adapter is not None and outcome.steps == 40
    assert [e.epoch for e in recorder.epochs] == [1, 2]
    # Measured (smoothed): 1.39 -> 0.51, 1.17 -> 0.60, 1.28 -> 0.58 for training seeds 1..3.
    assert recorder.losses[-1] < 0.7 * recorder.losses[0], f"loss did not fall: {recorder.losses[::10]}"

    target = trainer.instance_latents
    assert target is not None
    base = load_tiny_flux()
    before = distance(flux_latents(base, PROMPT), target)

    # The exported file, through the generator's own adapter path on a fresh pipeline.
    cache = AdapterCache(base, budget_bytes=1 << 30)
    cache.activate(
        [AdapterRef(modelId="mod_f", trainingId="t", key="trainings/t/adapter.safetensors")], lambda _: outcome.adapter
    )
    reloaded = flux_latents(base, PROMPT)
    after = distance(reloaded, target)
    # Measured: 0.625 -> 0.283, 0.288, 0.301 (0.45..0.48x) for training seeds 1..3.
    assert after < 0.7 * before, f"generations did not move toward the training set: {before:.3f} -> {after:.3f}"

    in_memory = flux_latents(trainer.pipeline, PROMPT)
    # Same weights, same float32 arithmetic: only summation order may differ (measured max abs difference: 0).
    assert torch.allclose(reloaded, in_memory, atol=1e-5), float((reloaded - in_memory).abs().max())


def test_adapter_state_and_export_carry_the_transformer_and_clip_layers(load_tiny_flux: FluxFactory) -> None:
    pipeline = load_tiny_flux()
    family = FluxFamily(pipeline, TINY_FLUX, flux_params(learningRateTextEncoder=1e-4), torch.device("cpu"))
    parameters = family.add_adapters(4, train_text_encoders=True, targets=TINY_FLUX_TARGETS)
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():  # as a training would leave them: every LoRA weight non-zero
        for param in (*parameters.denoiser, *parameters.text):
            param.copy_(torch.randn(param.shape, generator=generator) * 0.2)
    state = family.adapter_state()
    assert set(state) == {"transformer", "text_encoder"}

    # Resuming: the snapshot's weights put into a fresh training's layers give the same loss.
    restored = FluxFamily(load_tiny_flux(), TINY_FLUX, flux_params(learningRateTextEncoder=1e-4), torch.device("cpu"))
    restored.add_adapters(4, train_text_encoders=True, targets=TINY_FLUX_TARGETS)
    restored.load_adapter_state(state)
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    losses = [
        float(f.loss(latents, f.embed([PROMPT], grad=True), [], torch.Generator().manual_seed(1)).detach())
        for f in (family, restored)
    ]
    assert losses[0] == pytest.approx(losses[1], abs=1e-6)

    # The file loads through the generator's cache, CLIP's layers included, and generates as the trainer's pipeline.
    fresh = load_tiny_flux()
    AdapterCache(fresh, budget_bytes=1 << 30).activate(
        [AdapterRef(modelId="mod_f", trainingId="t", key="trainings/t/adapter.safetensors")],
        lambda _: family.export_adapter(),
    )
    assert any(isinstance(m, BaseTunerLayer) for m in fresh.text_encoder.modules())
    reloaded, in_memory = (
        flux_latents(fresh, PROMPT, count=1, steps=4),
        flux_latents(pipeline, PROMPT, count=1, steps=4),
    )
    assert torch.allclose(reloaded, in_memory, atol=1e-5), float((reloaded - in_memory).abs().max())
    assert not torch.allclose(in_memory, flux_latents(load_tiny_flux(), PROMPT, count=1, steps=4), atol=1e-3)

    sample = family.sample(PROMPT, width=72, height=64, steps=2, seed=0)
    assert sample.size == (64, 64)  # sides rounded down to FLUX's 16 px


def test_gradient_checkpointing_gives_the_same_lora_gradients(load_tiny_flux: FluxFactory) -> None:
    """What the loop turns on on a GPU (`denoiser.enable_gradient_checkpointing()`), checked here on the CPU: the
    recomputed activations must still carry gradients to the LoRA layers of a frozen transformer."""
    family = FluxFamily(load_tiny_flux(), TINY_FLUX, flux_params(), torch.device("cpu"))
    parameters = family.add_adapters(4, train_text_encoders=False, targets=TINY_FLUX_TARGETS)
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    conditioning = family.embed([PROMPT, PROMPT])

    def gradients() -> list[torch.Tensor]:
        family.denoiser.zero_grad(set_to_none=True)
        family.loss(latents, conditioning, [], torch.Generator().manual_seed(2)).backward()
        return [p.grad.clone() for p in parameters.denoiser if p.grad is not None]

    plain = gradients()
    family.denoiser.enable_gradient_checkpointing()  # type: ignore[operator]
    family.denoiser.train()
    checkpointed = gradients()
    assert len(plain) == len(checkpointed) == len(parameters.denoiser)
    assert any(float(g.abs().max()) > 0 for g in plain)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(plain, checkpointed, strict=True))
