"""Train tiny-shapes from nothing on its procedural dataset and write the weights `ensure_tiny_shapes` loads.

    python -m workers.base_models.tiny_shapes.train --out workers/base_models/tiny_shapes/weights [--seed 0]

Three stages, plain torch (model building, not the product's trainer), deterministic for a seed and a thread count:
1. the text encoder: tiny-sd's CLIP at its seeded initialization, rounded to float16 before anything uses it (it is
   committed in float16, so the UNet is trained against exactly the weights that ship), then trained jointly with
   the UNet in stage 3 at `--text-lr` (1e-3; 0 leaves it frozen). Frozen at that initialization, the hidden states
   of captions differing only by the shape word are far more alike than those differing by colour (centred cosine
   0.59 against 0.08; by background 0.93), and a UNet trained on them follows colour words and barely shape or
   background words (shape 0.44). Trained jointly, 3,000 UNet steps reached shape 0.93, colour 0.69, background
   0.24; 9,000 (the committed weights, 48 minutes on one thread) 1.00 for each;
2. the VAE: reconstruction (squared error, the shapes' pixels weighted 5x, a KL term small enough to leave the
   latents free, as SD's VAE) on the dataset's 64 px pictures; the scaling factor is then set so the latents have
   unit variance, as SD's 0.18215 does;
3. the UNet: DDPM noise, epsilon prediction, on the VAE posterior's mean (what the product's LoRA trainer encodes
   with), conditioned on the captions' hidden states, with 10% of captions dropped to the empty prompt so that
   classifier-free guidance has an unconditional prediction to push away from.

Weights are written in float16 (a few MB in all) with `build.json` (scaling factor, seed, steps, final losses).

`--vae-from DIR` loads the VAE of an earlier run (DIR/vae.safetensors) instead of training it, and replays the
random draws its training would have made: for the same seed and thread count that is the same as retraining it
(the determinism test shows training is deterministic), minus the VAE's minutes. `--checkpoint-every N` writes
the weights so far to OUT/checkpoints/step-N (each a folder bench/tiny_shapes_accuracy.py --weights can measure).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from safetensors.torch import load_file, save_file
from transformers import CLIPTextModel

from infra.shapes_dataset import ShapeSpec, caption, render, sample_specs
from workers.base_models.tiny_shapes import parts


@dataclass(frozen=True)
class TrainConfig:
    """How long and how hard each stage trains; the defaults are what the committed weights were made with."""

    seed: int = 0
    images: int = 4096
    vae_steps: int = 1500
    vae_batch: int = 8
    vae_lr: float = 2e-3
    kl_weight: float = 1e-6
    foreground_weight: float = 4.0
    unet_steps: int = 9000
    unet_batch: int = 32
    unet_lr: float = 2e-3
    text_lr: float = 1e-3  # the text encoder's, trained with the UNet; 0 leaves it at its initialization
    caption_dropout: float = 0.1
    warmup: int = 50


def _pixels(specs: Sequence[ShapeSpec]) -> torch.Tensor:
    """The rendered pictures as a float tensor in [-1, 1], N x 3 x SIDE x SIDE."""
    array = np.stack([np.asarray(render(spec, parts.SIDE), dtype=np.float32) for spec in specs])
    return torch.from_numpy(array).permute(0, 3, 1, 2) / 127.5 - 1.0


def _foreground(pixels: torch.Tensor) -> torch.Tensor:
    """1 where a rendered picture differs from its top-left pixel (the background: shapes keep a margin), else 0;
    N x 1 x H x W."""
    return ((pixels - pixels[:, :, :1, :1]).abs().amax(dim=1, keepdim=True) > 0.05).float()


def _schedule(optimizer: torch.optim.Optimizer, steps: int, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then cosine decay to zero: a short run ends at its best weights without an EMA."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + np.cos(np.pi * (step - warmup) / max(1, steps - warmup)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_vae(pixels: torch.Tensor, config: TrainConfig, generator: torch.Generator) -> tuple[torch.nn.Module, float]:
    """The VAE trained on `pixels`; its final reconstruction loss (mean absolute error in [-1, 1] units)."""
    vae = parts.vae()
    with torch.no_grad():
        # The posterior starts nearly deterministic (log-variance -8): at its default 0 the decoder sees latents
        # buried in unit noise until the encoder has learnt to shrink it, which took most of a short run. The
        # reconstruction loss then sets the variance, as it does in SD's VAE.
        vae.quant_conv.bias[vae.config.latent_channels :] = -8.0
    optimizer = torch.optim.AdamW(vae.parameters(), lr=config.vae_lr, weight_decay=0.0)
    lr_schedule = _schedule(optimizer, config.vae_steps, config.warmup)
    recent: list[float] = []
    started = time.monotonic()
    for step in range(config.vae_steps):
        batch = pixels[torch.randint(0, len(pixels), (config.vae_batch,), generator=generator)]
        posterior = vae.encode(batch).latent_dist
        latents = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator)
        reconstruction = vae.decode(latents).sample
        l1 = F.l1_loss(reconstruction, batch)
        # Squared error, the shape's pixels weighted up: most pixels are background, and a plain L1 over them learnt
        # brightness and left the shapes' hues for later (after 1,500 steps a red square came back dark grey).
        weights = 1.0 + config.foreground_weight * _foreground(batch)
        loss = (weights * (reconstruction - batch) ** 2).mean() + config.kl_weight * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        lr_schedule.step()
        recent = [*recent[-49:], float(l1.detach())]
        if (step + 1) % 50 == 0:
            elapsed = time.monotonic() - started
            print(f"vae step {step + 1}/{config.vae_steps} l1 {np.mean(recent):.4f} {elapsed:.0f}s", flush=True)
    return vae.eval(), float(np.mean(recent))


def load_vae(folder: Path, pixels: torch.Tensor, config: TrainConfig, generator: torch.Generator) -> torch.nn.Module:
    """The VAE of an earlier run's `folder` (float16 weights in float32, as that run's UNet stage used it), after
    making the random draws `train_vae` would have made from the global seed and `generator`: so the UNet's stage
    sees the same random numbers as after training a VAE with the same settings."""
    vae = parts.vae()  # its initialization draws from the global generator, as train_vae's does
    latent = vae.encode(pixels[:1]).latent_dist.mean.shape[1:]
    for _ in range(config.vae_steps):
        torch.randint(0, len(pixels), (config.vae_batch,), generator=generator)
        torch.randn((config.vae_batch, *latent), generator=generator)
    vae.load_state_dict(load_file(str(parts.weights_file("vae", folder))), strict=True)
    return vae.eval()


def encode(vae: torch.nn.Module, pixels: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """The VAE posterior's mean for every picture, unscaled."""
    with torch.no_grad():
        return torch.cat([vae.encode(pixels[i : i + batch]).latent_dist.mean for i in range(0, len(pixels), batch)])


def train_unet(
    latents: torch.Tensor,
    encoder: CLIPTextModel,
    caption_ids: torch.Tensor,
    caption_index: torch.Tensor,
    empty_index: int,
    config: TrainConfig,
    generator: torch.Generator,
    checkpoint: Callable[[int, torch.nn.Module], None] | None = None,
    checkpoint_every: int = 0,
) -> tuple[torch.nn.Module, float]:
    """The UNet (and `encoder`, in place, unless `text_lr` is 0) trained to predict the noise added to `latents`
    (already scaled), given the encoder's hidden states of each picture's caption `caption_ids[caption_index[i]]`,
    or those of the empty prompt (`empty_index`) for a `caption_dropout` share; its final loss. `checkpoint(step,
    unet)` is called every `checkpoint_every` steps (0: never)."""
    unet = parts.unet()
    noise_schedule = DDPMScheduler.from_config(parts.scheduler().config)
    groups: list[dict[str, object]] = [{"params": list(unet.parameters()), "lr": config.unet_lr}]
    if config.text_lr > 0:
        encoder.train()
        groups.append({"params": list(encoder.parameters()), "lr": config.text_lr})
    trained = [p for group in groups for p in group["params"]]  # type: ignore[union-attr]
    optimizer = torch.optim.AdamW(groups, weight_decay=0.0)
    lr_schedule = _schedule(optimizer, config.unet_steps, config.warmup)
    recent: list[float] = []
    started = time.monotonic()
    for step in range(config.unet_steps):
        rows = torch.randint(0, len(latents), (config.unet_batch,), generator=generator)
        clean = latents[rows]
        captions = caption_index[rows].clone()
        captions[torch.rand(config.unet_batch, generator=generator) < config.caption_dropout] = empty_index
        noise = torch.randn(clean.shape, generator=generator)
        timesteps = torch.randint(
            0, noise_schedule.config.num_train_timesteps, (config.unet_batch,), generator=generator
        )
        # Every caption's states each step (55 short prompts through a 5-layer width-32 encoder: cheap next to
        # the UNet), so the encoder's gradient does not depend on which captions the batch drew.
        with torch.set_grad_enabled(config.text_lr > 0):
            hidden = encoder(caption_ids)[0]
        prediction = unet(noise_schedule.add_noise(clean, noise, timesteps), timesteps, hidden[captions]).sample
        loss = F.mse_loss(prediction, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        lr_schedule.step()
        recent = [*recent[-49:], float(loss.detach())]
        if (step + 1) % 50 == 0:
            elapsed = time.monotonic() - started
            print(f"unet step {step + 1}/{config.unet_steps} loss {np.mean(recent):.4f} {elapsed:.0f}s", flush=True)
        if checkpoint is not None and checkpoint_every and (step + 1) % checkpoint_every == 0:
            checkpoint(step + 1, unet)
    encoder.eval()
    return unet.eval(), float(np.mean(recent))


def _save(module: torch.nn.Module, path: Path) -> None:
    state = {name: tensor.detach().to(torch.float16).contiguous() for name, tensor in module.state_dict().items()}
    save_file(state, str(path))


def _write(out: Path, modules: dict[str, torch.nn.Module], info: dict[str, object]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, module in modules.items():
        _save(module, parts.weights_file(name, out))
    (out / parts.BUILD_INFO).write_text(json.dumps(info, indent=2) + "\n")


def train(out: Path, config: TrainConfig, vae_from: Path | None = None, checkpoint_every: int = 0) -> dict[str, object]:
    """Train all three stages (the VAE loaded from `vae_from` instead, see the module's docstring) and write their
    weights and `build.json` into `out`, and every `checkpoint_every` UNet steps a checkpoint (the module's
    docstring); what `build.json` holds."""
    started = time.monotonic()
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    tokens = parts.tokenizer()
    encoder = parts.text_encoder(tokens).eval()
    encoder.to(torch.float16).to(torch.float32)  # train against the float16 weights that are committed

    specs = sample_specs(config.seed, config.images)
    pixels = _pixels(specs)
    print(f"dataset: {len(specs)} pictures, {time.monotonic() - started:.0f}s")

    if vae_from is None:
        vae, vae_l1 = train_vae(pixels, config, generator)
    else:
        vae = load_vae(vae_from, pixels, config, generator)
        vae_l1 = float(json.loads((vae_from / parts.BUILD_INFO).read_text())["vae_l1"])
        print(f"vae loaded from {vae_from}")
    vae.to(torch.float16).to(torch.float32)  # the UNet learns the latents of the VAE that ships
    out.mkdir(parents=True, exist_ok=True)
    _save(vae, parts.weights_file("vae", out))  # now, so its reconstructions can be looked at during the UNet's stage
    unscaled = encode(vae, pixels)
    scaling_factor = float(1.0 / unscaled.std())
    print(f"latents: std {unscaled.std():.4f}, scaling factor {scaling_factor:.5f}")

    captions = sorted({caption(spec) for spec in specs})
    caption_ids = parts.token_ids(tokens, [*captions, ""])
    index = {text: i for i, text in enumerate(captions)}
    caption_index = torch.tensor([index[caption(spec)] for spec in specs])

    def info(unet_loss: float | None) -> dict[str, object]:
        return {
            "scaling_factor": round(scaling_factor, 6),
            "dtype": "float16",
            "config": config.__dict__,
            "vae_l1": round(vae_l1, 5),
            "vae_loaded": vae_from is not None,  # from an earlier run with this config: the same VAE, its l1 copied
            "unet_loss": None if unet_loss is None else round(unet_loss, 5),
            "threads": torch.get_num_threads(),
            "seconds": round(time.monotonic() - started),
            "torch": torch.__version__,
        }

    def checkpoint(step: int, unet: torch.nn.Module) -> None:
        _write(out / "checkpoints" / f"step-{step}", {"unet": unet, "vae": vae, "text_encoder": encoder}, info(None))

    unet, unet_loss = train_unet(
        unscaled * scaling_factor,
        encoder,
        caption_ids,
        caption_index,
        len(captions),
        config,
        generator,
        checkpoint,
        checkpoint_every,
    )
    final = info(unet_loss)
    _write(out, {"unet": unet, "text_encoder": encoder}, final)
    print(f"done in {final['seconds']}s: {out}")
    return final


def main(argv: Sequence[str] | None = None) -> None:
    """The command line: `--out DIR`, and any stage's length or the seed to override the committed defaults."""
    defaults = TrainConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--images", type=int, default=defaults.images)
    parser.add_argument("--vae-steps", type=int, default=defaults.vae_steps)
    parser.add_argument("--unet-steps", type=int, default=defaults.unet_steps)
    parser.add_argument("--text-lr", type=float, default=defaults.text_lr)
    parser.add_argument("--checkpoint-every", type=int, default=0)
    parser.add_argument("--vae-from", type=Path, default=None, help="load DIR/vae.safetensors instead of training it")
    args = parser.parse_args(argv)
    config = TrainConfig(
        seed=args.seed,
        images=args.images,
        vae_steps=args.vae_steps,
        unet_steps=args.unet_steps,
        text_lr=args.text_lr,
    )
    train(args.out, config, vae_from=args.vae_from, checkpoint_every=args.checkpoint_every)


if __name__ == "__main__":
    main()
