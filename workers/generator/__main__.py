"""`python -m workers.generator`: a generator worker, one member of the generators' consumer group."""

from __future__ import annotations

import asyncio

from events.generation import GENERATION_REQUESTED, GenerationRequested
from events.topics import GENERATION_REQUESTS
from infra.settings import Settings
from workers import service
from workers.consumer import Route
from workers.generator.job import GenerationJobRunner
from workers.generator.pipelines import PipelineCache
from workers.service import OnReady, WorkerSetup, WorkerSpec, run_worker

READY_LINE = "generator worker ready"
PRELOAD = ("tiny-sd",)


async def setup(worker: WorkerSetup) -> dict[str, Route]:
    """Warm the preloaded base pipelines, then route generation requests to a job runner."""
    cache = PipelineCache(worker.settings)
    loop = asyncio.get_running_loop()
    for name in PRELOAD:
        await loop.run_in_executor(worker.executor, cache.get, name)
    runner = GenerationJobRunner(worker.context, cache, worker.worker_id, worker.executor)
    return {GENERATION_REQUESTED: Route(GenerationRequested, runner)}


GENERATOR = WorkerSpec(
    name="generator",
    topic=GENERATION_REQUESTS,
    group=lambda settings: settings.kafka_consumer_group,
    ready_line=READY_LINE,
    setup=setup,
)


async def serve(settings: Settings, stop: asyncio.Event, on_ready: OnReady | None = None) -> None:
    """Consume generation requests until `stop` is set (see `workers.service.serve`)."""
    await service.serve(GENERATOR, settings, stop, on_ready)


def main() -> None:
    """Run until SIGTERM or SIGINT."""
    run_worker(GENERATOR)


if __name__ == "__main__":
    main()
