"""`python -m workers.generator`: a generator worker, one member of the generators' consumer group."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from events.generation import GENERATION_REQUESTED, GenerationRequested
from events.topics import GENERATION_REQUESTS
from infra.kafka import create_consumer
from infra.runtime import ServiceContext
from infra.settings import Settings
from workers.consumer import ConsumerLoop, Route, run_worker
from workers.generator.job import GenerationJobRunner
from workers.generator.pipelines import PipelineCache

log = logging.getLogger("workers.generator")

READY_LINE = "generator worker ready"
PRELOAD = ("tiny-sd",)


def default_worker_id() -> str:
    """Host, process and a random suffix: unique even when a pid is reused."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


async def serve(
    settings: Settings, stop: asyncio.Event, on_ready: Callable[[ConsumerLoop], None] | None = None
) -> None:
    """Set up once (clients, warm pipelines), then consume generation requests until `stop` is set."""
    worker_id = settings.worker_id or default_worker_id()
    context = await ServiceContext(settings).open()
    # One thread: a pipeline is not safe to run twice at once, and one job at a time saturates a device.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generator")
    cache = PipelineCache(settings)
    consumer = create_consumer(settings, GENERATION_REQUESTS, group_id=settings.kafka_consumer_group)
    try:
        loop = asyncio.get_running_loop()
        for name in PRELOAD:
            await loop.run_in_executor(executor, cache.get, name)
        runner = GenerationJobRunner(context, cache, worker_id, executor)
        await consumer.start()
        consumer_loop = ConsumerLoop(
            consumer, context.producer, {GENERATION_REQUESTED: Route(GenerationRequested, runner)}
        )
        log.info("%s: %s", READY_LINE, worker_id)
        if on_ready:
            on_ready(consumer_loop)
        await consumer_loop.run(stop)
    finally:
        await consumer.stop()
        await context.close()
        executor.shutdown(wait=True)


def main() -> None:
    """Run until SIGTERM or SIGINT."""
    run_worker(serve)


if __name__ == "__main__":
    main()
