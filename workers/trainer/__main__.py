"""`python -m workers.trainer`: a trainer worker, one member of the trainers' consumer group.

A training in progress when the worker is asked to stop is handed back at its next step and resumed from its last
checkpoint by the next trainer of its partition; a killed worker's training is resumed the same way by whichever
worker claims it after its lease lapses.
"""

from __future__ import annotations

import asyncio

from events.topics import TRAINING_REQUESTS
from events.training import TRAINING_REQUESTED, TrainingRequested
from infra.base_models import TINY_SD
from infra.settings import Settings
from workers import service
from workers.base_models.loader import weights_dir
from workers.consumer import Route
from workers.service import OnReady, WorkerSetup, WorkerSpec, run_worker
from workers.trainer.job import TrainingJobRunner

READY_LINE = "trainer worker ready"


async def setup(worker: WorkerSetup) -> dict[str, Route]:
    """Put the built-in base model on disk, then route training requests to a job runner."""
    await asyncio.get_running_loop().run_in_executor(worker.executor, weights_dir, TINY_SD, worker.settings)
    runner = TrainingJobRunner(worker.context, worker.worker_id, worker.executor, worker.stopping)
    return {TRAINING_REQUESTED: Route(TrainingRequested, runner)}


TRAINER = WorkerSpec(
    name="trainer",
    topic=TRAINING_REQUESTS,
    group=lambda settings: settings.kafka_training_consumer_group,
    ready_line=READY_LINE,
    setup=setup,
)


async def serve(settings: Settings, stop: asyncio.Event, on_ready: OnReady | None = None) -> None:
    """Train until `stop` is set (see `workers.service.serve`)."""
    await service.serve(TRAINER, settings, stop, on_ready)


def main() -> None:
    """Run until SIGTERM or SIGINT."""
    run_worker(TRAINER)


if __name__ == "__main__":
    main()
