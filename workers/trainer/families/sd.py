"""The UNet families: Stable Diffusion 1.5 and SDXL (after diffusers' train_dreambooth_lora.py and
train_dreambooth_lora_sdxl.py).

Both noise latents with DDPM and predict the noise (or the velocity, for a v-prediction base); SDXL differs in its
two CLIP encoders (penultimate hidden states of each, concatenated; the pooled output of the second) and in the size
and crop conditioning (`add_time_ids`) its UNet reads beside the text.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline
from PIL import Image

from events.training import TrainingParameters
from infra.base_models import BaseModelSpec
from workers.trainer import lora
from workers.trainer.families.base import AdaptedComponents, AdapterParameters, Conditioning, Geometry


class UNetFamily(AdaptedComponents):
    """SD 1.5: one CLIP text encoder, DDPM noise, epsilon or v-prediction. SDXL subclasses it."""

    supports_prior_preservation = True
    text_components: tuple[str, ...] = ("text_encoder",)

    def __init__(
        self, pipeline: StableDiffusionPipeline, spec: BaseModelSpec, params: TrainingParameters, device: torch.device
    ) -> None:
        self.pipeline = pipeline
        self.spec = spec
        self.params = params
        self.device = device
        self.dtype = pipeline.unet.dtype
        self.noise_scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
        self.adapted: tuple[str, ...] = ()  # the components with LoRA layers, once added

    @property
    def denoiser(self) -> torch.nn.Module:
        """The UNet."""
        return self.pipeline.unet

    @property
    def text_encoders(self) -> list[torch.nn.Module]:
        """The CLIP encoders (SD 1.5: one; SDXL: both)."""
        return [getattr(self.pipeline, name) for name in self.text_components]

    @property
    def pixel_multiple(self) -> int:
        """The base model's size multiple (8: the VAE's factor)."""
        return self.spec.size_multiple

    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """The VAE posterior's mean (the same latents every time), scaled."""
        vae = self.pipeline.vae
        dtype = vae.dtype
        # SDXL's VAE overflows in float16, as its pipeline knows: encode in float32, then put it back, because the
        # pipeline (epoch samples, class images) upcasts only a VAE that is still in float16.
        upcast = dtype == torch.float16 and getattr(vae.config, "force_upcast", False)
        if upcast:
            vae.to(torch.float32)
        try:
            with torch.no_grad():
                latents = vae.encode(pixels.to(self.device, vae.dtype)).latent_dist.mean * vae.config.scaling_factor
        finally:
            if upcast:
                vae.to(dtype)
        return latents.to("cpu", torch.float32)

    def _tokens(self, prompts: Sequence[str]) -> torch.Tensor:
        tokenizer = self.pipeline.tokenizer
        return tokenizer(
            list(prompts),
            padding="max_length",
            max_length=tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        ).input_ids.to(self.device)

    def _encode(self, prompts: Sequence[str]) -> Conditioning:
        return Conditioning({"hidden": self.pipeline.text_encoder(self._tokens(prompts))[0]})

    def embed(self, prompts: Sequence[str], *, grad: bool = False) -> Conditioning:
        """The text encoder's last hidden states, one row per prompt."""
        if grad:
            return self._encode(prompts)
        with torch.no_grad():
            conditioning = self._encode(prompts)
        return Conditioning({name: t.to(torch.float32) for name, t in conditioning.tensors.items()})

    def add_adapters(self, rank: int, train_text_encoders: bool, targets: tuple[str, ...]) -> AdapterParameters:
        """LoRA on the UNet's `targets` and, when they train, on every CLIP encoder's attention projections."""
        pipeline = self.pipeline
        for module in (pipeline.unet, pipeline.vae, *self.text_encoders):
            module.requires_grad_(False)
        denoiser = lora.add_lora(pipeline.unet, rank, targets)
        text: list[torch.nn.Parameter] = []
        if train_text_encoders:
            for encoder in self.text_encoders:
                text += lora.add_lora(encoder, rank, lora.TEXT_ENCODER_TARGETS)
        self.adapted = ("unet", *(self.text_components if train_text_encoders else ()))
        return AdapterParameters(denoiser=denoiser, text=text)

    def _added_conditions(
        self, conditioning: Conditioning, geometry: Sequence[Geometry]
    ) -> dict[str, torch.Tensor] | None:
        return None

    def loss(
        self,
        latents: torch.Tensor,
        conditioning: Conditioning,
        geometry: Sequence[Geometry],
        generator: torch.Generator,
    ) -> torch.Tensor:
        """DDPM: noise at a random timestep, predict the noise (or the velocity), mean squared error."""
        count = latents.shape[0]
        noise = torch.randn(latents.shape, generator=generator)
        timesteps = torch.randint(0, self.noise_scheduler.config.num_train_timesteps, (count,), generator=generator)
        latents, noise, timesteps = latents.to(self.device), noise.to(self.device), timesteps.to(self.device)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        hidden = conditioning.tensors["hidden"].to(self.device, self.dtype)
        added = self._added_conditions(conditioning, geometry)
        prediction = self.pipeline.unet(noisy.to(self.dtype), timesteps, hidden, added_cond_kwargs=added).sample
        if self.noise_scheduler.config.prediction_type == "v_prediction":
            target = self.noise_scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        return F.mse_loss(prediction.float(), target.float(), reduction="mean")

    def sample(self, prompt: str, width: int, height: int, steps: int, seed: int) -> Image.Image:
        """One image with the adapter as it stands."""
        unet = self.pipeline.unet
        was_training = unet.training
        unet.eval()
        with torch.no_grad():
            image = self.pipeline(
                prompt=prompt,
                width=width,
                height=height,
                num_inference_steps=steps,
                generator=torch.Generator("cpu").manual_seed(seed),
            ).images[0]
        unet.train(was_training)
        return image


class SdxlFamily(UNetFamily):
    """SDXL: two CLIP encoders and the size and crop conditioning."""

    text_components = ("text_encoder", "text_encoder_2")
    pipeline: StableDiffusionXLPipeline

    def _encode(self, prompts: Sequence[str]) -> Conditioning:
        # The pipeline's own encoding: penultimate hidden states of both encoders side by side, the second's pooled
        # output; no classifier-free guidance rows in training.
        hidden, _, pooled, _ = self.pipeline.encode_prompt(
            prompt=list(prompts), device=self.device, num_images_per_prompt=1, do_classifier_free_guidance=False
        )
        return Conditioning({"hidden": hidden, "pooled": pooled})

    def _added_conditions(
        self, conditioning: Conditioning, geometry: Sequence[Geometry]
    ) -> dict[str, torch.Tensor] | None:
        # add_time_ids: (original height, width, crop top, left, target height, width) per image, as the SDXL
        # pipeline builds them at inference (where the crop is (0, 0) and the sizes the output's).
        time_ids = torch.tensor(
            [[*g.original_size, *g.crop_top_left, *g.target_size] for g in geometry], dtype=torch.float32
        )
        return {
            "text_embeds": conditioning.tensors["pooled"].to(self.device, self.dtype),
            "time_ids": time_ids.to(self.device, self.dtype),
        }
