"""Running one training job: claim it, load its inputs (resuming from the last checkpoint), train off the event
loop, then write its outcome; every epoch's checkpoint and samples are written as training goes.

A training outlasts any stop timeout, so a worker asked to stop hands its training back at the next step: it
writes no marker, ends its lease at once and leaves the record uncommitted (`HandBack`), so the partition's next
owner claims it straight away and resumes it from its last checkpoint."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import Executor
from datetime import datetime

from events.envelope import utcnow
from events.lifecycle import JobError
from events.persistence import AdvanceOutcome, PublishFailed
from events.records.jobs import TrainingJob
from events.states import TRAINING, JobKind, ModelStatus, TrainingStatus
from events.storage_keys import Marker, training_marker_key
from events.training import (
    TrainingCanceled,
    TrainingFailure,
    TrainingRequested,
    TrainingRequestedData,
    TrainingResult,
    TrainingStage,
)
from events.usecases import jobs
from events.usecases.lifecycle import publish_lifecycle_once
from infra.metrics import JOB_DURATION, JOBS_FINISHED
from infra.repositories.base_models import RegisteredBaseModelReader
from infra.runtime import ServiceContext
from infra.tracing import in_current_context
from workers.base_models.loader import load_pipeline, pick_device
from workers.consumer import HandBack
from workers.job_errors import TRAINING_FAILED, BaseModelUnavailable, failure_reason
from workers.trainer.bridge import StopSignals, TrainingBridge
from workers.trainer.captioning import training_prompts, write_automatic_captions
from workers.trainer.inputs import TrainingInputs, load_training_inputs
from workers.trainer.loop import LoraTrainer, TrainingOutcome
from workers.trainer.outputs import TrainingOutputs

log = logging.getLogger(__name__)

CANCEL_POLL_S = 0.5
_KIND = JobKind.TRAINING.value


def _record_stage(stage: str, started: float) -> None:
    """Observe how long a stage of a training took, from `started` (a perf counter) to now."""
    JOB_DURATION.labels(kind=_KIND, stage=stage).observe(time.perf_counter() - started)


class TrainingJobRunner:
    """Handles `training.requested` events for one worker."""

    def __init__(
        self, context: ServiceContext, worker_id: str, executor: Executor, stopping: asyncio.Event | None = None
    ) -> None:
        self.context = context
        self.settings = context.settings
        self.worker_id = worker_id
        self.executor = executor
        self.lease_seconds = context.settings.worker_lease_seconds
        self.stopping = stopping or asyncio.Event()  # set when the worker is asked to stop
        # The base models it may be asked for, those an operator registered at run time included.
        self.base_models = RegisteredBaseModelReader(context.settings)

    async def __call__(self, event: TrainingRequested) -> None:
        """Run the training the event names, unless it is done or held by a live worker."""
        data = event.data
        job = await self._job_of(event)
        if job is None:
            return  # a direct producer's training that was refused (failed through its marker), or not a training
        if job.tenantId != event.tenantid:
            log.warning("event for training %s names another tenant: skipped", data.trainingId)
            return
        if TRAINING.is_terminal(job.status):
            log.info("training %s already %s: duplicate delivery skipped", data.trainingId, job.status.value)
            return
        claimed = await self.context.jobs.claim(
            data.trainingId, self.worker_id, self.lease_seconds, kind=JobKind.TRAINING
        )
        if claimed is None:
            log.info("training %s is held by another worker: skipped", data.trainingId)
            return
        log.info("training %s claimed (attempt %s)", data.trainingId, claimed.attempts)
        await self._announce_start(claimed)
        outputs = TrainingOutputs(self.context.store, data.trainingId)
        assert claimed.attempts is not None and claimed.startedAt is not None  # a claim sets both
        bridge = TrainingBridge(outputs, data, claimed.attempts, datetime.fromisoformat(claimed.startedAt))
        watcher = asyncio.create_task(self._watch(data.trainingId, bridge.signals))
        try:
            await self._run(data, bridge)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _job_of(self, event: TrainingRequested) -> TrainingJob | None:
        """The training the event names, created from the event when it has none; None when a direct
        producer's training was refused (and failed), or when the id is a job of another kind."""
        data = event.data
        job = await self.context.jobs.get(data.trainingId)
        if job is None:
            # Published straight to Kafka by a direct producer: the event is the whole request.
            refusal = await self._take_model(event)
            job = await jobs.record_job(self.context, jobs.training_record(event.tenantid, data), existing_ok=True)
            if refusal is not None:
                # Recorded, so the producer's tenant sees why in the API, then failed through its marker.
                await self._fail(data.trainingId, 1, *refusal)
                return None
        if not isinstance(job, TrainingJob):
            log.warning("job %s is not a training: skipped", data.trainingId)
            return None
        return job

    async def _take_model(self, event: TrainingRequested) -> tuple[str, str] | None:
        """For a direct producer's training, what the API does before queueing one: the model must be the
        tenant's and not training; it moves to `training` with this training as its current one. Returns
        why it cannot (a failure code and message), or None."""
        data = event.data
        model = await self.context.models.get(data.modelId)
        if model is None or model.tenantId != event.tenantid or model.deletedAt:
            return "model_not_found", f"model {data.modelId!r} does not exist"
        advance = await self.context.models.advance(
            data.modelId, ModelStatus.TRAINING, {"trainingId": data.trainingId, "triggerWord": data.triggerWord}
        )
        if advance.outcome is not AdvanceOutcome.APPLIED and model.trainingId != data.trainingId:
            return "model_training", f"model {data.modelId!r} is already training (training {model.trainingId})"
        return None

    async def _announce_start(self, claimed: TrainingJob) -> None:
        try:
            await publish_lifecycle_once(self.context, claimed, TrainingStatus.RUNNING, source="/lorafoundry/worker")
        except PublishFailed:
            # The status is recorded; a missing "started" event must not stop the training itself.
            log.warning("could not publish the start of training %s", claimed.jobId, exc_info=True)

    async def _watch(self, training_id: str, signals: StopSignals) -> None:
        """Renew the lease and notice a cancel request, until the run ends."""
        last_renewal = time.monotonic()
        while True:
            await asyncio.sleep(CANCEL_POLL_S)  # the polling period, not a synchronisation
            if self.stopping.is_set() and not signals.hand_back.is_set():
                log.info("worker stopping: handing training %s back at its next step", training_id)
                signals.hand_back.set()
            try:
                job = await self.context.jobs.get_as(training_id, TrainingJob)
                if job is not None and job.cancelRequested:
                    signals.stop.set()
                if time.monotonic() - last_renewal >= self.lease_seconds / 3:
                    renewed = await self.context.jobs.renew_lease(
                        training_id, self.worker_id, self.lease_seconds, kind=JobKind.TRAINING
                    )
                    if not renewed:
                        log.warning("lost the lease of training %s; stopping", training_id)
                        signals.lost.set()
                        return
                    last_renewal = time.monotonic()
            except Exception:
                # One failed read must neither end the watch, which keeps the lease, nor fail the training.
                log.warning("watching training %s: a read failed; trying again", training_id, exc_info=True)

    async def _run(self, data: TrainingRequestedData, bridge: TrainingBridge) -> None:
        """Load the inputs, train, then write the outcome; a job error (or a model failure) writes the
        failure marker instead."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            inputs = await load_training_inputs(self.context.store, data)
            _record_stage("inputs", started)
            bridge.epochs = list(inputs.epochs_done)
            outcome = await loop.run_in_executor(self.executor, in_current_context(self._train), data, inputs, bridge)
        except Exception as exc:  # the training failed (see job_errors): its marker says why, the worker goes on
            reason = failure_reason(exc, TRAINING_FAILED)
            if not reason.expected:
                log.exception("training %s failed", data.trainingId)
            await self._fail(data.trainingId, bridge.attempt, reason.code, reason.message, started)
            return
        await self._write_outcome(data, bridge, outcome, started)

    def _train(self, data: TrainingRequestedData, inputs: TrainingInputs, bridge: TrainingBridge) -> TrainingOutcome:
        """Load a fresh pipeline, caption the images and train on it, in the model thread."""
        spec = self.base_models.spec(data.baseModel)
        if spec is None:
            raise BaseModelUnavailable(f"unknown base model {data.baseModel!r}")
        loading = time.perf_counter()
        pipeline = load_pipeline(spec, self.settings)  # a fresh copy: adapters are added to it in place
        pipeline.set_progress_bar_config(disable=True)
        _record_stage("load", loading)
        computing = time.perf_counter()
        prompts = training_prompts(data, inputs.keys, inputs.images, self.settings)
        if prompts.automatic:
            # Recorded before training starts, so the API shows them even while it runs (or if it fails).
            asyncio.run_coroutine_threadsafe(
                write_automatic_captions(self.context.store, data.trainingId, prompts.automatic), bridge.loop
            ).result()
        device, _ = pick_device(self.settings.torch_device)
        trainer = LoraTrainer(
            pipeline,
            data.parameters,
            device,
            spec,
            eight_bit_optimizer=self.settings.trainer_8bit_optimizer,
            log=log.info,
        )
        trainer.prepare(inputs.images, prompts.prompts, inputs.keys)
        bridge.progress(TrainingStage.STARTING, 0, 0, None, None)
        outcome = trainer.run(bridge, inputs.resume)
        _record_stage("compute", computing)
        return outcome

    async def _write_outcome(
        self, data: TrainingRequestedData, bridge: TrainingBridge, outcome: TrainingOutcome, started: float
    ) -> None:
        """The canceled marker, or the final adapter then the result marker; nothing when the lease was lost.
        `started` is the perf counter when the run began."""
        if bridge.signals.lost.is_set():
            return  # another worker owns it now and will finish it
        outputs = bridge.outputs
        if outcome.canceled and not bridge.signals.stop.is_set() and bridge.signals.hand_back.is_set():
            # A lease that ends now: the next claim, a moment later, finds it lapsed.
            await self.context.jobs.renew_lease(data.trainingId, self.worker_id, 0, kind=JobKind.TRAINING)
            raise HandBack(f"training {data.trainingId} handed back at step {outcome.steps}")
        uploading = time.perf_counter()
        if outcome.canceled:
            await outputs.canceled(
                TrainingCanceled(
                    trainingId=data.trainingId, step=outcome.steps, workerId=self.worker_id, canceledAt=utcnow()
                )
            )
            self._finished(TrainingStatus.CANCELED, started)
            return
        assert outcome.adapter is not None
        adapter_key = await outputs.adapter(outcome.adapter)
        await outputs.result(
            TrainingResult(
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
        )
        _record_stage("upload", uploading)
        self._finished(TrainingStatus.SUCCEEDED, started)

    @staticmethod
    def _finished(status: TrainingStatus, started: float | None) -> None:
        """Count a training this worker ended (its marker written) and, when it ran, its whole time; log it (in the
        training's log context: the line names the job, its tenant and its trace)."""
        JOBS_FINISHED.labels(kind=_KIND, status=status.value).inc()
        if started is not None:
            _record_stage("total", started)
        log.info("training %s", status.value)

    async def _fail(
        self, training_id: str, attempt: int, code: str, message: str, started: float | None = None
    ) -> None:
        failure = TrainingFailure(
            trainingId=training_id,
            error=JobError(code=code, message=message[:2000]),
            workerId=self.worker_id,
            attempt=attempt,
            failedAt=utcnow(),
        )
        await self.context.store.put_model(training_marker_key(training_id, Marker.FAILED), failure)
        self._finished(TrainingStatus.FAILED, started)
