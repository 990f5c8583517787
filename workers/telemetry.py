"""A worker's own metrics endpoint (LF_METRICS_PORT) and the gauges only a worker can sample: its consumer group's
lag (measured as `infra.consumer_lag` measures it for the AWS scaling policy) and, where there is a GPU, the memory
its process holds on each device."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from infra.consumer_lag import WorkerGroup, measure_lag
from infra.metrics import CONSUMER_LAG, GPU_MEMORY
from infra.metrics_server import MetricsServer, start_metrics_server
from infra.settings import Settings

log = logging.getLogger(__name__)

SAMPLE_INTERVAL_S = 15.0
SAMPLER_TASK = "worker metrics sampler"


def sample_gpu_memory() -> int:
    """Set GPU_MEMORY{device, kind=allocated|reserved} for every CUDA device; the number of devices sampled (0
    without a GPU)."""
    import torch

    if not torch.cuda.is_available():
        return 0
    count = torch.cuda.device_count()
    for index in range(count):
        device = f"cuda:{index}"
        GPU_MEMORY.labels(device=device, kind="allocated").set(torch.cuda.memory_allocated(index))
        GPU_MEMORY.labels(device=device, kind="reserved").set(torch.cuda.memory_reserved(index))
    return count


async def sample_lag(settings: Settings, group: WorkerGroup) -> int | None:
    """Set CONSUMER_LAG for the worker's own group; the lag, or None (logged) when the broker did not answer."""
    try:
        (measured,) = await asyncio.wait_for(measure_lag(settings, [group]), timeout=SAMPLE_INTERVAL_S)
    except Exception as exc:  # a broker away for a while: the gauge keeps its last value
        log.warning("could not measure the lag of %s: %s", group.group_id, exc)
        return None
    CONSUMER_LAG.labels(group=group.group_id, topic=group.topic).set(measured.lag)
    return measured.lag


@contextlib.asynccontextmanager
async def worker_metrics(settings: Settings, group: WorkerGroup) -> AsyncIterator[MetricsServer | None]:
    """While the block runs: the metrics server on LF_METRICS_PORT and the samplers every ~15 s. Yields the
    server, or None (nothing is served or sampled) when no port is set."""
    if settings.metrics_port is None:
        yield None
        return
    server = start_metrics_server(settings.metrics_port, settings.metrics_host)

    async def sample() -> None:
        gpu = True
        while True:
            await sample_lag(settings, group)
            if gpu:
                try:
                    gpu = sample_gpu_memory() > 0
                except Exception as exc:  # a broken CUDA set-up must not stop the worker's metrics
                    log.warning("could not read GPU memory: %s", exc)
                    gpu = False
            await asyncio.sleep(SAMPLE_INTERVAL_S)  # the sampling period, not a synchronisation

    task = asyncio.create_task(sample(), name=SAMPLER_TASK)
    try:
        yield server
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        server.stop()
