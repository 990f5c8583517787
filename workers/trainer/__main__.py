"""`python -m workers.trainer`: a trainer worker, one member of the trainers' consumer group."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from events.topics import TRAINING_REQUESTS
from events.training import TRAINING_REQUESTED, TrainingRequested
from infra.base_models import TINY_SD
from infra.kafka import create_consumer
from infra.runtime import ServiceContext
from infra.settings import Settings
from workers.base_models.loader import weights_dir
from workers.consumer import ConsumerLoop, Route, run_worker
from workers.generator.__main__ import default_worker_id
from workers.trainer.job import TrainingJobRunner

log = logging.getLogger("workers.trainer")

READY_LINE = "trainer worker ready"


async def serve(
    settings: Settings, stop: asyncio.Event, on_ready: Callable[[ConsumerLoop], None] | None = None
) -> None:
    """Set up once (clients, the built-in base model on disk), then train until `stop` is set.

    A training in progress when `stop` is set runs to its end; a killed worker's training is resumed
    from its last checkpoint by whichever worker claims it next.
    """
    worker_id = settings.worker_id or default_worker_id()
    context = await ServiceContext(settings).open()
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="trainer")
    consumer = create_consumer(settings, TRAINING_REQUESTS, group_id=settings.kafka_training_consumer_group)
    try:
        await asyncio.get_running_loop().run_in_executor(executor, weights_dir, TINY_SD, settings)
        runner = TrainingJobRunner(context, worker_id, executor)
        await consumer.start()
        consumer_loop = ConsumerLoop(consumer, context.producer, {TRAINING_REQUESTED: Route(TrainingRequested, runner)})
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
