"""Building adapter layers while another thread loads weights: the layers must be real, not meta tensors.

diffusers' `load_lora_weights` (and `from_pretrained`) enter peft's or accelerate's `init_empty_weights`, which
replaces `torch.nn.Module.register_parameter` for the whole process. A training that adds its LoRA layers in
that window used to get them on the meta device and failed at its first backward pass (seen in CI when the
session's generator loaded an adapter while the trainer started a training).
"""

from __future__ import annotations

import threading

import torch
from peft.utils.integrations import init_empty_weights

from infra.base_models import TINY_SD_TARGETS
from tests.model.conftest import PipelineFactory
from workers.module_construction import MODULE_CONSTRUCTION
from workers.trainer.lora import add_adapters


def test_adapter_layers_added_while_weights_load_elsewhere_are_real_tensors(load_tiny_sd: PipelineFactory) -> None:
    pipeline = load_tiny_sd()
    loading, added = threading.Event(), threading.Event()
    built: list = []

    def training_starts() -> None:
        loading.wait(30)
        built.extend(add_adapters(pipeline, rank=4, train_text_encoder=True, unet_targets=TINY_SD_TARGETS))
        added.set()

    trainer = threading.Thread(target=training_starts)
    trainer.start()
    # Another thread "loads an adapter" the way diffusers does, holding the lock as the loaders do.
    with MODULE_CONSTRUCTION, init_empty_weights():
        loading.set()
        # The training must wait for the load to end rather than build its layers inside the patched window.
        assert not added.wait(1.0), "adapter layers were built while another thread's weights were loading"
    trainer.join(60)
    assert added.is_set()
    assert built and {p.device.type for p in built} == {"cpu"}


def test_a_replacement_left_by_two_overlapping_loads_is_undone_before_the_next_construction(
    load_tiny_sd: PipelineFactory,
) -> None:
    pipeline = load_tiny_sd()
    original = torch.nn.Module.register_parameter
    # Two loads in two threads, one outside the lock, exiting in the order they entered: the last to exit puts
    # back the first one's replacement, not torch's own function.
    first, second = init_empty_weights(), init_empty_weights()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    second.__exit__(None, None, None)
    try:
        assert torch.nn.Module.register_parameter is not original, "the overlap no longer leaks: rethink this test"
        built = add_adapters(pipeline, rank=4, train_text_encoder=False, unet_targets=TINY_SD_TARGETS)
        assert torch.nn.Module.register_parameter is original
        assert built and {p.device.type for p in built} == {"cpu"}
    finally:
        torch.nn.Module.register_parameter = original  # type: ignore[method-assign]
