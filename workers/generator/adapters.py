"""LoRA adapters kept loaded in a base pipeline and switched per request, bounded by memory.

Loading an adapter means fetching its file and injecting its layers; switching between loaded adapters is only
`set_adapters` with new weights. So a worker serving many tenants loads each adapter once, activates it per
request, and unloads the least recently used when the loaded adapters outgrow their byte budget.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from diffusers import DiffusionPipeline
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors

from events.generation import AdapterRef
from infra.metrics import ADAPTER_CACHE
from workers.job_errors import AdapterUnavailable
from workers.module_construction import MODULE_CONSTRUCTION

AdapterFetcher = Callable[[str], bytes]


@dataclass(frozen=True)
class Activation:
    """What activating a request's adapters cost, and what it loaded."""

    loaded: list[str]
    load_ms: float
    switch_ms: float


def adapter_name(key: str) -> str:
    """A stable adapter name for an S3 key (peft names cannot hold dots or slashes)."""
    return "lf_" + hashlib.sha256(key.encode()).hexdigest()[:20]


class AdapterCache:
    """The adapters loaded into one pipeline, least recently used first. Not thread-safe: the caller
    serializes use of the pipeline, which this mutates."""

    def __init__(self, pipeline: DiffusionPipeline, budget_bytes: int) -> None:
        self.pipeline = pipeline
        self.budget_bytes = budget_bytes
        self._sizes: OrderedDict[str, int] = OrderedDict()  # key -> bytes of its weights
        self._enabled = True
        self._active: tuple[tuple[str, float], ...] = ()  # what set_adapters last made active

    @property
    def loaded(self) -> list[str]:
        """Keys of the loaded adapters, least recently used first."""
        return list(self._sizes)

    @property
    def loaded_bytes(self) -> int:
        """Bytes of adapter weights held."""
        return sum(self._sizes.values())

    def activate(self, adapters: Sequence[AdapterRef], fetch: AdapterFetcher) -> Activation:
        """Make exactly `adapters` active with their scales, loading those not yet loaded."""
        started = time.perf_counter()
        newly: list[str] = []
        for adapter in adapters:
            if adapter.key in self._sizes:
                self._sizes.move_to_end(adapter.key)
                ADAPTER_CACHE.labels(result="hit").inc()
            else:
                ADAPTER_CACHE.labels(result="miss").inc()
                self._load(adapter.key, fetch, keep={a.key for a in adapters})
                newly.append(adapter.key)
        loaded_at = time.perf_counter()
        wanted = tuple((a.key, a.scale) for a in adapters)
        if adapters:
            if not self._enabled:
                self.pipeline.enable_lora()
                self._enabled = True
            # set_adapters walks every LoRA layer: skip it when the same adapters and weights are active.
            if wanted != self._active or newly:
                self.pipeline.set_adapters(
                    [adapter_name(a.key) for a in adapters], adapter_weights=[a.scale for a in adapters]
                )
                self._active = wanted
        elif self._sizes and self._enabled:
            # The base model alone: loaded adapters stay in memory for the next request, switched off.
            self.pipeline.disable_lora()
            self._enabled = False
        done = time.perf_counter()
        return Activation(loaded=newly, load_ms=(loaded_at - started) * 1000, switch_ms=(done - loaded_at) * 1000)

    def _load(self, key: str, fetch: AdapterFetcher, keep: set[str]) -> None:
        try:
            state = load_safetensors(fetch(key))
        except SafetensorError as exc:
            raise AdapterUnavailable(f"adapter {key} is not a readable safetensors file: {exc}") from exc
        size = sum(t.numel() * t.element_size() for t in state.values())
        self._evict(size, keep)
        try:
            with MODULE_CONSTRUCTION:
                self.pipeline.load_lora_weights(state, adapter_name=adapter_name(key))
        except (ValueError, KeyError, RuntimeError) as exc:
            # A half-injected adapter must not linger in the pipeline.
            self._unload(key)
            raise AdapterUnavailable(f"adapter {key} does not fit this base model: {exc}") from exc
        self._sizes[key] = size

    def _evict(self, incoming: int, keep: set[str]) -> None:
        for key in list(self._sizes):
            if self.loaded_bytes + incoming <= self.budget_bytes:
                return
            if key not in keep:
                self._unload(key)

    def _unload(self, key: str) -> None:
        self._active = ()
        name = adapter_name(key)
        present = {n for names in self.pipeline.get_list_adapters().values() for n in names}
        if name in present:
            self.pipeline.delete_adapters(name)
        self._sizes.pop(key, None)
