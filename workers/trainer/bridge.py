"""The training loop's hooks, called in the training thread: progress and epochs written through the event
loop (and waited for, so a checkpoint is in S3 before training goes on), and the flags that stop it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from datetime import datetime
from typing import Any

from events.envelope import utcnow
from events.training import TrainingProgress, TrainingRequestedData, TrainingStage, epoch_name
from workers.trainer.loop import EpochReport, StepReport
from workers.trainer.outputs import TrainingOutputs

PROGRESS_INTERVAL_S = 1.0


class StopSignals:
    """Why a training should stop early, set from the event loop and read in the training thread."""

    def __init__(self) -> None:
        self.stop = threading.Event()  # a cancel was requested: stop and write the canceled marker
        self.lost = threading.Event()  # the lease went to another worker: stop without writing markers
        # The worker is stopping (SIGTERM): stop without markers and give the training back, for another worker
        # to resume from its last checkpoint.
        self.hand_back = threading.Event()

    def should_stop(self) -> bool:
        """Whether any was set."""
        return self.stop.is_set() or self.lost.is_set() or self.hand_back.is_set()


def progress_snapshot(
    data: TrainingRequestedData,
    seq: int,
    started: datetime,
    stage: TrainingStage,
    step: int,
    epoch: int,
    loss: float | None,
    rate: float | None,
) -> TrainingProgress:
    """progress.json for a step: the remaining time is estimated from the current steps per second."""
    params = data.parameters
    remaining = None
    if rate:
        remaining = int((params.maxTrainSteps - step) / rate * 1000)
    return TrainingProgress(
        trainingId=data.trainingId,
        seq=seq,
        stage=stage,
        step=step,
        totalSteps=params.maxTrainSteps,
        epoch=epoch,
        totalEpochs=params.nbEpochs,
        loss=None if loss is None else round(loss, 6),
        stepsPerSecond=None if rate is None else round(rate, 3),
        remainingTimeMs=remaining,
        startedAt=started,
        updatedAt=utcnow(),
    )


class TrainingBridge:
    """Implements the loop's `TrainingHooks` for one attempt of one training."""

    def __init__(
        self,
        outputs: TrainingOutputs,
        data: TrainingRequestedData,
        attempt: int,
        started: datetime,
        epochs_done: list[str] | None = None,
    ) -> None:
        self.outputs = outputs
        self.data = data
        self.loop = asyncio.get_running_loop()
        self.attempt = attempt
        self.started = started
        self.signals = StopSignals()
        self.counter = 0
        self.last_progress = 0.0
        self.epochs: list[str] = list(epochs_done or ())

    def _wait(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def progress(self, stage: TrainingStage, step: int, epoch: int, loss: float | None, rate: float | None) -> None:
        """Write progress.json; `seq` orders attempts first, so a resumed run supersedes a dead one."""
        self.counter += 1
        seq = (self.attempt << 32) + self.counter
        snapshot = progress_snapshot(self.data, seq, self.started, stage, step, epoch, loss, rate)
        self._wait(self.outputs.progress(snapshot))
        self.last_progress = time.monotonic()

    def on_step(self, report: StepReport) -> None:
        """Progress at most every PROGRESS_INTERVAL_S, and at the last step."""
        if time.monotonic() - self.last_progress >= PROGRESS_INTERVAL_S or report.step == report.total_steps:
            self.progress(TrainingStage.RUNNING, report.step, report.epoch, report.loss, report.steps_per_second)

    def on_epoch(self, report: EpochReport) -> None:
        """The epoch's checkpoint, in S3 before training goes on."""
        self._wait(self.outputs.epoch(report))
        self.epochs.append(epoch_name(report.epoch))

    def should_stop(self) -> bool:
        """Whether a cancel or a lost lease asks the loop to stop."""
        return self.signals.should_stop()
