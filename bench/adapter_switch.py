"""Per-request adapter overhead: the generator's adapter cache against loading each adapter per request.

A stream of requests alternates between several LoRA adapters (round robin, so every request needs another
adapter than the one before). Both paths serve it on the same base pipeline, with the adapter files already
in memory (so S3 is not measured; a real baseline would also fetch the file every request):

- cache (workers/generator/adapters.py): each adapter is loaded once; a request only activates its adapter
  with `set_adapters` and its weight. A warm-up pass loads every adapter before the timed stream, which is
  the worker's steady state.
- baseline: each request calls `load_lora_weights` with its adapter, and `delete_adapters` after generating,
  as a worker without a cache would.

It prints the median and p99 overhead per request of each path, the ratio, and the cache's switch as a
share of one generation (the target: under 5% on tiny-sd).

    python bench/adapter_switch.py                      # tiny-sd, 64 px, 10 steps, CPU
    python bench/adapter_switch.py --model sd15-random --size 512 --steps 30 --requests 40   # on a GPU
    python bench/adapter_switch.py --shape sdxl-random --size 1024 --steps 30 --requests 20  # SDXL, on a GPU
    python bench/adapter_switch.py --shape flux-random --size 1024 --steps 28 --requests 20  # FLUX.1, on a GPU
    python bench/adapter_switch.py --shape flux-random --tiny --requests 8                   # smoke run, CPU

The random shapes (bench/random_shapes.py) are built once, on the device in its dtype; their adapters are made on
that same pipeline and removed again. `--tiny` builds them at a tiny width (the same code path, seconds on a CPU).
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import time

import torch
from diffusers import DiffusionPipeline
from diffusers.utils import logging as diffusers_logging
from random_shapes import build_flux_random, build_sdxl_random, random_spec
from safetensors.torch import load as load_safetensors

from events.generation import AdapterRef
from infra.base_models import ATTENTION_TARGETS, TINY_SD_TARGETS, Family
from infra.settings import Settings
from workers.base_models.loader import pick_device
from workers.base_models.tiny_sd import build_tiny_sd
from workers.generator.adapters import AdapterCache, adapter_name
from workers.generator.pipelines import MAX_T5_TOKENS
from workers.trainer.lora import denoiser_of, random_adapter

PROMPT = "a photo of lfzq"


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def build(
    model: str, tiny: bool, device: torch.device, dtype: torch.dtype
) -> tuple[DiffusionPipeline, tuple[str, ...]]:
    """The base pipeline of a --model shape on `device` in `dtype`, and its adapters' LoRA targets."""
    if model == "tiny-sd":
        pipeline, targets = build_tiny_sd(), TINY_SD_TARGETS
    elif model == "sd15-random":
        from train_throughput import build_sd15_random  # the same SD 1.5-shaped random model as the training bench

        pipeline, targets = build_sd15_random(), ATTENTION_TARGETS
    else:
        family, builder = RANDOM_SHAPES[model]
        pipeline = builder(tiny=tiny, device=device, dtype=dtype)
        targets = random_spec(model, family, tiny).lora_targets
    pipeline = pipeline.to(device, dtype)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline, targets


RANDOM_SHAPES = {"sdxl-random": (Family.SDXL, build_sdxl_random), "flux-random": (Family.FLUX, build_flux_random)}


def adapter_files(pipeline: DiffusionPipeline, count: int, rank: int, targets: tuple[str, ...]) -> dict[str, bytes]:
    """`count` random adapter files made on `pipeline`'s own denoiser, each removed from it once written (a
    throwaway copy of a 17-billion-parameter FLUX per adapter would not fit)."""
    _, denoiser = denoiser_of(pipeline)
    files = {}
    for n in range(count):
        files[f"trainings/t{n}/adapter.safetensors"] = random_adapter(pipeline, seed=n, rank=rank, unet_targets=targets)
        denoiser.delete_adapters("default")
    return files


def call_arguments(pipeline: DiffusionPipeline) -> dict[str, object]:
    """What a family's pipeline needs beyond the common arguments: FLUX's T5 length (as the generator passes it)."""
    if "max_sequence_length" in inspect.signature(pipeline.__call__).parameters:
        return {"max_sequence_length": min(pipeline.tokenizer_2.model_max_length, MAX_T5_TOKENS)}
    return {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--model", "--shape", dest="model", choices=("tiny-sd", "sd15-random", *RANDOM_SHAPES), default="tiny-sd"
    )
    parser.add_argument("--tiny", action="store_true", help="build a random shape at a tiny width (CPU smoke run)")
    parser.add_argument("--adapters", type=int, default=4)
    parser.add_argument("--requests", type=int, default=60, help="timed requests per path")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rank", type=int, default=8)
    args = parser.parse_args()
    # Every load says the adapters hold no text-encoder layers; 2 x requests times is noise here.
    diffusers_logging.set_verbosity_error()

    device, dtype = pick_device(Settings().torch_device)
    pipeline, targets = build(args.model, args.tiny, device, dtype)
    files = adapter_files(pipeline, args.adapters, args.rank, targets)
    refs = [AdapterRef(modelId=f"mod_{n}", trainingId=f"t{n}", key=key, scale=0.8) for n, key in enumerate(files)]
    extra = call_arguments(pipeline)

    def generate() -> float:
        started = time.perf_counter()
        with torch.inference_mode():
            pipeline(
                PROMPT,
                width=args.size,
                height=args.size,
                num_inference_steps=args.steps,
                generator=torch.Generator("cpu").manual_seed(0),
                **extra,
            )
        if device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - started) * 1000

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    cache = AdapterCache(pipeline, budget_bytes=1 << 34)
    for ref in refs:  # warm-up: the steady state of a worker that has served these adapters before
        cache.activate([ref], files.__getitem__)
        generate()

    cached_overhead: list[float] = []
    cached_generation: list[float] = []
    for i in range(args.requests):
        started = time.perf_counter()
        activation = cache.activate([refs[i % len(refs)]], files.__getitem__)
        sync()
        cached_overhead.append((time.perf_counter() - started) * 1000)
        assert not activation.loaded, "a warm cache loaded an adapter again"
        cached_generation.append(generate())

    # The baseline on the same pipeline, its cached adapters removed first.
    for ref in refs:
        pipeline.delete_adapters(adapter_name(ref.key))
    baseline_overhead: list[float] = []
    baseline_generation: list[float] = []
    for i in range(args.requests):
        ref = refs[i % len(refs)]
        name = adapter_name(ref.key)
        started = time.perf_counter()
        pipeline.load_lora_weights(load_safetensors(files[ref.key]), adapter_name=name)
        pipeline.set_adapters([name], adapter_weights=[ref.scale])
        sync()
        loaded = time.perf_counter()
        baseline_generation.append(generate())
        unloading = time.perf_counter()
        pipeline.delete_adapters(name)
        sync()
        baseline_overhead.append((loaded - started + time.perf_counter() - unloading) * 1000)

    generation_ms = statistics.median(cached_generation + baseline_generation)
    cached_median, baseline_median = statistics.median(cached_overhead), statistics.median(baseline_overhead)
    print(
        f"model {args.model}{' (tiny width)' if args.tiny else ''} on {device.type}, "
        f"{args.adapters} adapters (rank {args.rank}) alternating, "
        f"{args.requests} requests per path, {args.size} px, {args.steps} steps"
    )
    print(f"generation (median):                {generation_ms:9.2f} ms")
    print(
        f"baseline load_lora_weights/request: median {baseline_median:8.2f} ms   "
        f"p99 {percentile(baseline_overhead, 99):8.2f} ms"
    )
    print(
        f"cache set_adapters switch:          median {cached_median:8.2f} ms   "
        f"p99 {percentile(cached_overhead, 99):8.2f} ms"
    )
    print(f"ratio (baseline / cache, medians):  {baseline_median / cached_median:9.1f}x")
    share = cached_median / generation_ms * 100
    print(f"cache switch / generation:          {share:9.2f} %  (target < 5 %: {'met' if share < 5 else 'NOT met'})")


if __name__ == "__main__":
    main()
