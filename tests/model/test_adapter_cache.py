"""The generator's adapter cache on tiny-sd: switching, mixing, scales, eviction, bad files."""

from __future__ import annotations

import pytest
import torch
from diffusers import StableDiffusionPipeline

from events.generation import AdapterRef
from infra.base_models import TINY_SD_TARGETS
from tests.model.conftest import PipelineFactory, generate_latents, random_adapter
from workers.generator.adapters import AdapterCache, AdapterUnavailable
from workers.trainer.lora import add_adapters, export_adapter

PROMPT = "a photo of lfzq"


@pytest.fixture(scope="module")
def adapter_files(load_tiny_sd: PipelineFactory) -> dict[str, bytes]:
    return {f"trainings/t{n}/adapter.safetensors": random_adapter(load_tiny_sd, seed=n) for n in range(3)}


def ref(key: str, scale: float = 1.0) -> AdapterRef:
    return AdapterRef(modelId="mod_x", trainingId=key.split("/")[1], key=key, scale=scale)


def latents(pipeline: StableDiffusionPipeline) -> torch.Tensor:
    return generate_latents(pipeline, PROMPT, steps=4)


class Fetcher:
    """Serves adapter files and counts reads, so a test can tell a cache hit from a load."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.reads: list[str] = []

    def __call__(self, key: str) -> bytes:
        self.reads.append(key)
        return self.files[key]


def test_switching_between_loaded_adapters_reads_nothing_again(
    load_tiny_sd: PipelineFactory, adapter_files: dict[str, bytes]
) -> None:
    pipeline = load_tiny_sd()
    base = latents(pipeline)
    cache = AdapterCache(pipeline, budget_bytes=1 << 30)
    fetch = Fetcher(adapter_files)
    a, b, _ = adapter_files
    outputs = {}
    for key in (a, b, a, b):
        activation = cache.activate([ref(key)], fetch)
        outputs.setdefault(key, latents(pipeline))
        assert torch.equal(latents(pipeline), outputs[key]), "the same adapter must give the same output"
        if len(fetch.reads) > 2:
            pytest.fail(f"adapters read more than once: {fetch.reads}")
        assert activation.switch_ms >= 0
    assert fetch.reads == [a, b]
    assert not torch.allclose(outputs[a], outputs[b]), "two different adapters gave the same output"
    assert not torch.allclose(outputs[a], base)
    # No adapters: the base model's output exactly, while the adapters stay loaded.
    cache.activate([], fetch)
    assert torch.equal(latents(pipeline), base)
    assert cache.loaded == [a, b]
    # And back on again.
    cache.activate([ref(a)], fetch)
    assert torch.equal(latents(pipeline), outputs[a])


def test_scales_weigh_adapters(load_tiny_sd: PipelineFactory, adapter_files: dict[str, bytes]) -> None:
    pipeline = load_tiny_sd()
    base = latents(pipeline)
    cache = AdapterCache(pipeline, budget_bytes=1 << 30)
    fetch = Fetcher(adapter_files)
    a, b, _ = adapter_files
    cache.activate([ref(a, 0.0)], fetch)
    assert torch.allclose(latents(pipeline), base, atol=1e-5), "scale 0 must be the base model"
    cache.activate([ref(a, 1.0)], fetch)
    full = latents(pipeline)
    cache.activate([ref(a, 0.5)], fetch)
    half = latents(pipeline)
    assert not torch.allclose(half, full) and not torch.allclose(half, base)
    cache.activate([ref(a, 0.5), ref(b, 0.5)], fetch)
    mixed = latents(pipeline)
    cache.activate([ref(b, 0.5)], fetch)
    assert not torch.allclose(mixed, half) and not torch.allclose(mixed, latents(pipeline))


def test_least_recently_used_is_unloaded_past_the_budget(
    load_tiny_sd: PipelineFactory, adapter_files: dict[str, bytes]
) -> None:
    pipeline = load_tiny_sd()
    fetch = Fetcher(adapter_files)
    a, b, c = adapter_files
    probe = AdapterCache(load_tiny_sd(), budget_bytes=1 << 30)
    probe.activate([ref(a)], fetch)
    one = probe.loaded_bytes
    cache = AdapterCache(pipeline, budget_bytes=2 * one)  # room for two
    cache.activate([ref(a)], fetch)
    cache.activate([ref(b)], fetch)
    cache.activate([ref(a)], fetch)  # a is now the most recent
    cache.activate([ref(c)], fetch)
    assert cache.loaded == [a, c]
    loaded_in_pipeline = {name for names in pipeline.get_list_adapters().values() for name in names}
    assert len(loaded_in_pipeline) == 2, "the evicted adapter's layers must leave the pipeline"
    # A request that needs more than the budget still runs: its own adapters are never evicted for it.
    cache.activate([ref(a), ref(b), ref(c)], fetch)
    assert set(cache.loaded) == {a, b, c}


def test_unreadable_or_mismatched_adapter_is_refused(
    load_tiny_sd: PipelineFactory, adapter_files: dict[str, bytes]
) -> None:
    pipeline = load_tiny_sd()
    cache = AdapterCache(pipeline, budget_bytes=1 << 30)
    with pytest.raises(AdapterUnavailable, match="not a readable safetensors"):
        cache.activate([ref("trainings/bad/adapter.safetensors")], lambda _: b"definitely not safetensors")
    assert cache.loaded == []
    # The pipeline still serves the good ones afterwards.
    cache.activate([ref(next(iter(adapter_files)))], Fetcher(adapter_files))
    assert len(cache.loaded) == 1


@pytest.mark.parametrize("train_text_encoder", [False, True])
def test_an_exported_adapter_reproduces_the_trained_pipeline_exactly(
    load_tiny_sd: PipelineFactory, train_text_encoder: bool
) -> None:
    trained = load_tiny_sd()
    params = add_adapters(trained, rank=4, train_text_encoder=train_text_encoder, unet_targets=TINY_SD_TARGETS)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for param in params:
            param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    expected = latents(trained)
    served = load_tiny_sd()
    AdapterCache(served, budget_bytes=1 << 30).activate(
        [ref("trainings/t9/adapter.safetensors")], lambda _: export_adapter(trained, train_text_encoder)
    )
    # Every layer must survive the round trip: one dropped module (attention, convs, text encoder) shows here.
    assert torch.allclose(latents(served), expected, atol=1e-5)


def test_the_same_adapters_and_weights_again_skip_set_adapters(
    load_tiny_sd: PipelineFactory, adapter_files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline = load_tiny_sd()
    cache = AdapterCache(pipeline, budget_bytes=1 << 30)
    a, b, _ = adapter_files
    calls: list[list[str]] = []
    original = pipeline.set_adapters
    monkeypatch.setattr(pipeline, "set_adapters", lambda names, **kw: (calls.append(names), original(names, **kw)))
    fetch = Fetcher(adapter_files)
    cache.activate([ref(a), ref(b, 0.5)], fetch)
    first = latents(pipeline)
    cache.activate([ref(a), ref(b, 0.5)], fetch)
    assert len(calls) == 1, "an unchanged mix was set again"
    assert torch.equal(latents(pipeline), first)
    cache.activate([], fetch)  # the base model in between: LoRA off, the mix kept
    cache.activate([ref(a), ref(b, 0.5)], fetch)
    assert len(calls) == 1 and torch.equal(latents(pipeline), first)
    cache.activate([ref(a), ref(b, 0.7)], fetch)  # a new weight is a new mix
    assert len(calls) == 2 and not torch.equal(latents(pipeline), first)
