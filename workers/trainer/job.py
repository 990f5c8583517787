"""Running one training job: claim it, resume from the last checkpoint, train off the event loop, write
every epoch's checkpoint and samples, then the final adapter and the marker."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import threading
import time
from concurrent.futures import Executor
from datetime import datetime
from typing import Any

from PIL import Image

from events.envelope import utcnow
from events.lifecycle import JobError
from events.persistence import AdvanceOutcome, PublishFailed
from events.states import TRAINING, ModelStatus, TrainingStatus
from events.storage_keys import (
    EPOCH_MARKER_NAME,
    Marker,
    training_adapter_key,
    training_epoch_keys,
    training_marker_key,
    training_prefix,
    training_sample_key,
)
from events.training import (
    EpochCheckpoint,
    TrainingCanceled,
    TrainingFailure,
    TrainingProgress,
    TrainingRequested,
    TrainingRequestedData,
    TrainingResult,
    TrainingStage,
    epoch_name,
)
from events.usecases import jobs
from events.usecases.lifecycle import publish_lifecycle_once
from infra.base_models import base_model_registry
from infra.runtime import ServiceContext
from workers.base_models.loader import BaseModelUnavailable, load_pipeline, pick_device
from workers.trainer.loop import EpochReport, LoraTrainer, StepReport, TrainingOutcome

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 1.0
CANCEL_POLL_S = 0.5


class TrainingDataMissing(RuntimeError):
    """None of the training's images can be read."""


class _Bridge:
    """The loop's hooks, called in the training thread; storage writes are run on the event loop and
    waited for, so a checkpoint is in S3 before training goes on."""

    def __init__(self, runner: TrainingJobRunner, data: TrainingRequestedData, attempt: int, started: datetime) -> None:
        self.runner = runner
        self.data = data
        self.loop = asyncio.get_running_loop()
        self.attempt = attempt
        self.started = started
        self.stop = threading.Event()
        self.lost = threading.Event()  # the lease went to another worker: stop without writing markers
        self.counter = 0
        self.last_progress = 0.0
        self.epochs: list[str] = []

    def _wait(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def progress(self, stage: TrainingStage, step: int, epoch: int, loss: float | None, rate: float | None) -> None:
        """Write progress.json; `seq` orders attempts first, so a resumed run supersedes a dead one."""
        params = self.data.parameters
        self.counter += 1
        remaining = None
        if rate:
            remaining = int((params.maxTrainSteps - step) / rate * 1000)
        snapshot = TrainingProgress(
            trainingId=self.data.trainingId,
            seq=(self.attempt << 32) + self.counter,
            stage=stage,
            step=step,
            totalSteps=params.maxTrainSteps,
            epoch=epoch,
            totalEpochs=params.nbEpochs,
            loss=None if loss is None else round(loss, 6),
            stepsPerSecond=None if rate is None else round(rate, 3),
            remainingTimeMs=remaining,
            startedAt=self.started,
            updatedAt=utcnow(),
        )
        self._wait(
            self.runner.context.store.put_model(training_marker_key(self.data.trainingId, Marker.PROGRESS), snapshot)
        )
        self.last_progress = time.monotonic()

    def on_step(self, report: StepReport) -> None:
        if time.monotonic() - self.last_progress >= PROGRESS_INTERVAL_S or report.step == report.total_steps:
            self.progress(TrainingStage.RUNNING, report.step, report.epoch, report.loss, report.steps_per_second)

    def on_epoch(self, report: EpochReport) -> None:
        self._wait(self.runner.write_epoch(self.data.trainingId, report))
        self.epochs.append(epoch_name(report.epoch))

    def should_stop(self) -> bool:
        return self.stop.is_set() or self.lost.is_set()


class TrainingJobRunner:
    """Handles `training.requested` events for one worker."""

    def __init__(self, context: ServiceContext, worker_id: str, executor: Executor) -> None:
        self.context = context
        self.settings = context.settings
        self.worker_id = worker_id
        self.executor = executor
        self.lease_seconds = context.settings.worker_lease_seconds

    async def __call__(self, event: TrainingRequested) -> None:
        """Run the training the event names, unless it is done or held by a live worker."""
        data = event.data
        repo = self.context.trainings
        job = await repo.get(data.trainingId)
        if job is None:
            # Published straight to Kafka by a direct producer: the event is the whole request.
            refusal = await self._take_model(event)
            job = await jobs.record_job(self.context, jobs.training_record(event.tenantid, data), existing_ok=True)
            if refusal is not None:
                # Recorded, so the producer's tenant sees why in the API, then failed through its marker.
                await self._fail(data.trainingId, 1, *refusal)
                return
        if job["tenantId"] != event.tenantid:
            log.warning("event for training %s names another tenant: skipped", data.trainingId)
            return
        if TRAINING.is_terminal(TrainingStatus(job["status"])):
            log.info("training %s already %s: duplicate delivery skipped", data.trainingId, job["status"])
            return
        claimed = await repo.claim(data.trainingId, self.worker_id, self.lease_seconds)
        if claimed is None:
            log.info("training %s is held by another worker: skipped", data.trainingId)
            return
        try:
            await publish_lifecycle_once(self.context, claimed, TrainingStatus.RUNNING, source="/lorafoundry/worker")
        except PublishFailed:
            log.warning("could not publish the start of training %s", data.trainingId, exc_info=True)
        bridge = _Bridge(self, data, claimed["attempts"], datetime.fromisoformat(claimed["startedAt"]))
        watcher = asyncio.create_task(self._watch(data.trainingId, bridge))
        try:
            await self._run(data, bridge)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _take_model(self, event: TrainingRequested) -> tuple[str, str] | None:
        """For a direct producer's training, what the API does before queueing one: the model must be the
        tenant's and not training; it moves to `training` with this training as its current one. Returns
        why it cannot (a failure code and message), or None."""
        data = event.data
        model = await self.context.models.get(data.modelId)
        if model is None or model.get("tenantId") != event.tenantid or model.get("deletedAt"):
            return "model_not_found", f"model {data.modelId!r} does not exist"
        advance = await self.context.models.advance(
            data.modelId, ModelStatus.TRAINING, {"trainingId": data.trainingId, "triggerWord": data.triggerWord}
        )
        if advance.outcome is not AdvanceOutcome.APPLIED and model.get("trainingId") != data.trainingId:
            return "model_training", f"model {data.modelId!r} is already training (training {model.get('trainingId')})"
        return None

    async def _watch(self, training_id: str, bridge: _Bridge) -> None:
        """Renew the lease and notice a cancel request, until the run ends."""
        last_renewal = time.monotonic()
        while True:
            await asyncio.sleep(CANCEL_POLL_S)
            job = await self.context.trainings.get(training_id)
            if job is not None and job.get("cancelRequested"):
                bridge.stop.set()
            if time.monotonic() - last_renewal >= self.lease_seconds / 3:
                if not await self.context.trainings.renew_lease(training_id, self.worker_id, self.lease_seconds):
                    log.warning("lost the lease of training %s; stopping", training_id)
                    bridge.lost.set()
                    return
                last_renewal = time.monotonic()

    async def _latest_snapshot(self, training_id: str) -> tuple[bytes | None, list[str]]:
        """The snapshot of the last complete epoch (its marker exists), and the epochs done."""
        keys = await self.context.store.list_keys(f"{training_prefix(training_id)}checkpoints/")
        done = sorted(k.split("/")[-2] for k in keys if k.endswith("/" + EPOCH_MARKER_NAME))
        if not done:
            return None, []
        _, state_key, _ = training_epoch_keys(training_id, done[-1])
        return await self.context.store.get_bytes(state_key), done

    async def _images(self, keys: list[str]) -> list[Image.Image]:
        blobs = await asyncio.gather(*(self.context.store.get_bytes(k) for k in keys))
        images = [Image.open(io.BytesIO(b)).convert("RGB") for b in blobs if b is not None]
        if not images:
            raise TrainingDataMissing("none of the training images exist any more")
        if len(images) < len(keys):
            log.warning("%d of %d training images are gone; training on the rest", len(keys) - len(images), len(keys))
        return images

    def _train(
        self, data: TrainingRequestedData, images: list[Image.Image], bridge: _Bridge, resume: bytes | None
    ) -> TrainingOutcome:
        spec = base_model_registry(self.settings).get(data.baseModel)
        if spec is None:
            raise BaseModelUnavailable(f"unknown base model {data.baseModel!r}")
        pipeline = load_pipeline(spec, self.settings)  # a fresh copy: adapters are added to it in place
        pipeline.set_progress_bar_config(disable=True)
        device, _ = pick_device(self.settings.torch_device)
        trainer = LoraTrainer(pipeline, data.parameters, device, spec.lora_targets, log=log.info)
        trainer.prepare(images)
        bridge.progress(TrainingStage.STARTING, 0, 0, None, None)
        return trainer.run(bridge, resume)

    async def _run(self, data: TrainingRequestedData, bridge: _Bridge) -> None:
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            resume, done = await self._latest_snapshot(data.trainingId)
            bridge.epochs = list(done)
            images = await self._images(data.dataKeys)
            outcome = await loop.run_in_executor(self.executor, self._train, data, images, bridge, resume)
        except BaseModelUnavailable as exc:
            await self._fail(data.trainingId, bridge.attempt, "model_unavailable", str(exc))
            return
        except TrainingDataMissing as exc:
            await self._fail(data.trainingId, bridge.attempt, "training_data_missing", str(exc))
            return
        except Exception as exc:  # the model code failed on this input: the training fails, the worker goes on
            log.exception("training %s failed", data.trainingId)
            await self._fail(data.trainingId, bridge.attempt, "training_failed", f"{type(exc).__name__}: {exc}")
            return
        if bridge.lost.is_set():
            return  # another worker owns it now and will finish it
        if outcome.canceled:
            await self.context.store.put_model(
                training_marker_key(data.trainingId, Marker.CANCELED),
                TrainingCanceled(
                    trainingId=data.trainingId, step=outcome.steps, workerId=self.worker_id, canceledAt=utcnow()
                ),
            )
            return
        assert outcome.adapter is not None
        adapter_key = training_adapter_key(data.trainingId)
        await self.context.store.put_bytes(adapter_key, outcome.adapter, "application/octet-stream")
        result = TrainingResult(
            trainingId=data.trainingId,
            modelId=data.modelId,
            adapterKey=adapter_key,
            triggerWord=data.triggerWord,
            epochs=bridge.epochs,
            steps=outcome.steps,
            finalLoss=outcome.final_loss,
            workerId=self.worker_id,
            attempt=bridge.attempt,
            resumedFromStep=outcome.resumed_from_step,
            startedAt=bridge.started,
            completedAt=utcnow(),
            trainSeconds=round(time.perf_counter() - started, 3),
        )
        # The marker goes last: its notification tells the world the adapter is there.
        await self.context.store.put_model(training_marker_key(data.trainingId, Marker.RESULT), result)

    async def write_epoch(self, training_id: str, report: EpochReport) -> None:
        """One epoch's adapter, snapshot and samples, then its marker."""
        epoch = epoch_name(report.epoch)
        adapter_key, state_key, marker_key = training_epoch_keys(training_id, epoch)
        sample_keys = [training_sample_key(training_id, epoch, i) for i in range(len(report.samples))]
        encoded = []
        for image in report.samples:
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            encoded.append(buffer.getvalue())
        store = self.context.store
        await asyncio.gather(
            store.put_bytes(adapter_key, report.adapter, "application/octet-stream"),
            store.put_bytes(state_key, report.snapshot, "application/octet-stream"),
            *(store.put_bytes(k, b, "image/png") for k, b in zip(sample_keys, encoded, strict=True)),
        )
        await store.put_model(
            marker_key,
            EpochCheckpoint(
                trainingId=training_id,
                epoch=epoch,
                step=report.step,
                adapterKey=adapter_key,
                sampleKeys=sample_keys,
                loss=round(report.loss, 6),
                createdAt=utcnow(),
            ),
        )
        log.info("training %s: epoch %s written at step %d", training_id, epoch, report.step)

    async def _fail(self, training_id: str, attempt: int, code: str, message: str) -> None:
        failure = TrainingFailure(
            trainingId=training_id,
            error=JobError(code=code, message=message[:2000]),
            workerId=self.worker_id,
            attempt=attempt,
            failedAt=utcnow(),
        )
        await self.context.store.put_model(training_marker_key(training_id, Marker.FAILED), failure)
