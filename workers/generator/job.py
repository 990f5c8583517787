"""Running one generation job: claim it, load its inputs, generate off the event loop, write outputs then the
marker. While it runs a watcher renews its lease and notices a cancel asked of it: the run then stops between
two denoising steps and the job ends with `canceled.json` and no outputs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from concurrent.futures import Executor
from datetime import datetime

from events.envelope import utcnow
from events.generation import GenerationMode, GenerationRequested, GenerationRequestedData
from events.lifecycle import JobError
from events.markers import GenerationResult, JobCanceled, JobFailure, OutputParameters, StageTimings
from events.persistence import PublishFailed
from events.records.jobs import GenerationJob
from events.states import GENERATION, GenerationStatus, JobKind
from events.storage_keys import Marker, job_marker_key, job_output_key
from events.usecases import jobs
from events.usecases.lifecycle import publish_lifecycle_once
from infra.metrics import JOB_DURATION, JOBS_FINISHED
from infra.runtime import ServiceContext
from infra.tracing import in_current_context
from workers.generator.pipelines import GeneratedImages, PipelineCache, decode_inputs, generate
from workers.job_errors import (
    GENERATION_FAILED,
    AdapterUnavailable,
    GenerationCanceled,
    InputUnavailable,
    failure_reason,
)

log = logging.getLogger(__name__)

# How often the watcher reads the job for a cancel request (a running job stops within about this).
CANCEL_POLL_S = 0.5
KIND = JobKind.GENERATION.value
# The result marker's stage timings (milliseconds) and the `stage` label each is observed under.
STAGE_OF_TIMING = {
    "loadMs": "load",
    "adapterLoadMs": "adapter_load",
    "adapterSwitchMs": "adapter_switch",
    "computeMs": "compute",
    "uploadMs": "upload",
}


class GenerationJobRunner:
    """Handles `generation.requested` events for one worker."""

    def __init__(self, context: ServiceContext, cache: PipelineCache, worker_id: str, executor: Executor) -> None:
        self.context = context
        self.cache = cache
        self.worker_id = worker_id
        self.executor = executor
        self.lease_seconds = context.settings.worker_lease_seconds

    async def __call__(self, event: GenerationRequested) -> None:
        """Run the job the event names, unless it is done or held by a live worker."""
        data = event.data
        job = await self._job_of(event)
        if job is None:
            log.warning("job %s is not a generation: skipped", data.jobId)
            return
        if job.tenantId != event.tenantid:
            log.warning("event for job %s names tenant %s, job belongs to another: skipped", data.jobId, event.tenantid)
            return
        if GENERATION.is_terminal(job.status):
            log.info("job %s already %s: duplicate delivery skipped", data.jobId, job.status.value)
            return
        claimed = await self.context.jobs.claim(data.jobId, self.worker_id, self.lease_seconds, kind=JobKind.GENERATION)
        if claimed is None:
            log.info("job %s is held by another worker: skipped", data.jobId)
            return
        log.info("generation %s claimed (attempt %s)", data.jobId, claimed.attempts)
        await self._announce_start(claimed)
        cancel = threading.Event()  # read by the model thread between two denoising steps
        if claimed.cancelRequested:
            cancel.set()  # asked before a lapsed lease made this worker take it over
        watcher = asyncio.create_task(self._watch(data.jobId, cancel))
        try:
            assert claimed.attempts is not None and claimed.startedAt is not None  # a claim sets both
            await self._run(event, claimed.attempts, datetime.fromisoformat(claimed.startedAt), cancel)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _job_of(self, event: GenerationRequested) -> GenerationJob | None:
        """The generation job the event names, created from the event when it has none; None when the id is
        a job of another kind."""
        data = event.data
        job = await self.context.jobs.get(data.jobId)
        if job is None:
            # Published straight to Kafka by a direct producer: the event is the whole request.
            job = await jobs.record_job(self.context, jobs.generation_record(event.tenantid, data), existing_ok=True)
        return job if isinstance(job, GenerationJob) else None

    async def _run(
        self, event: GenerationRequested, attempt: int, started_at: datetime, cancel: threading.Event
    ) -> None:
        """Load the inputs, generate, then write the outputs and the result marker; a job error (or a model
        failure) writes the failure marker instead, a cancel the canceled marker. Storage failures propagate:
        the record is retried."""
        data = event.data
        began = time.perf_counter()
        inputs = await self._load_inputs(data)
        try:
            generated = await self._generate(data, inputs, cancel)
        except GenerationCanceled as stopped:
            log.info("job %s canceled after %d step(s)", data.jobId, stopped.step)
            await self._cancel(data.jobId, stopped.step)
            self._finished("canceled", began)
            return
        except Exception as exc:  # the job failed (see job_errors): its marker says why, the worker goes on
            reason = failure_reason(exc, GENERATION_FAILED)
            if not reason.expected:
                log.exception("job %s failed", data.jobId)
            await self._fail(data.jobId, attempt, reason.code, reason.message)
            self._finished("failed", began)
            return
        recorded = (await self._write_outputs(data, generated, attempt, started_at)).model_dump()
        for field, stage in STAGE_OF_TIMING.items():
            JOB_DURATION.labels(kind=KIND, stage=stage).observe(recorded[field] / 1000)
        self._finished("completed", began)

    @staticmethod
    def _finished(status: str, began: float) -> None:
        """Count the job's end and its whole time on this worker (`began`: the perf counter at its start), and log
        it (the line names the job, its tenant and its trace: the handler runs in the job's log context)."""
        elapsed = time.perf_counter() - began
        JOBS_FINISHED.labels(kind=KIND, status=status).inc()
        JOB_DURATION.labels(kind=KIND, stage="total").observe(elapsed)
        log.info("generation %s after %.2f s", status, elapsed)

    async def _load_inputs(self, data: GenerationRequestedData) -> dict[str, bytes | None]:
        """The bytes of a modify job's input image and mask by key (None where missing); none for a
        text-to-image job."""
        keys = data.input_keys()
        found = await asyncio.gather(*(self.context.store.get_bytes(key) for key in keys))
        return dict(zip(keys, found, strict=True))

    async def _generate(
        self, data: GenerationRequestedData, inputs: dict[str, bytes | None], cancel: threading.Event
    ) -> GeneratedImages:
        """Decode the inputs and run the pipeline on the model thread; raises the job's errors, and
        `GenerationCanceled` once `cancel` is set."""
        missing = [key for key, found in inputs.items() if found is None]
        if missing:
            raise InputUnavailable(f"input image {missing[0]} does not exist")
        blobs = [found for found in inputs.values() if found is not None]
        loop = asyncio.get_running_loop()

        def fetch_adapter(key: str) -> bytes:
            # Called on the executor thread only for adapters not loaded yet; S3 is read on the loop.
            found = asyncio.run_coroutine_threadsafe(self.context.store.get_bytes(key), loop).result()
            if found is None:
                raise AdapterUnavailable(f"adapter {key} does not exist")
            return found

        def run() -> GeneratedImages:
            decoded = decode_inputs(data, blobs[0], blobs[1] if len(blobs) > 1 else None) if blobs else None
            return generate(self.cache, data, fetch_adapter, decoded, cancel)

        # The model thread logs and traces as the job's task does (its job id, its span).
        return await loop.run_in_executor(self.executor, in_current_context(run))

    async def _write_outputs(
        self, data: GenerationRequestedData, generated: GeneratedImages, attempt: int, started_at: datetime
    ) -> StageTimings:
        """The images, then the result marker; returns the stage timings it recorded."""
        upload_started = time.perf_counter()
        keys = [job_output_key(data.jobId, i, generated.extension) for i in range(len(generated.images))]
        await asyncio.gather(
            *(
                self.context.store.put_bytes(key, image, generated.content_type)
                for key, image in zip(keys, generated.images, strict=True)
            )
        )
        result = GenerationResult(
            jobId=data.jobId,
            outputs=keys,
            mode=data.mode.value,
            strength=None if data.mode is GenerationMode.TEXT_TO_IMAGE else data.effective_strength,
            width=data.width,
            height=data.height,
            seed=data.seed,
            numInferenceSteps=data.numInferenceSteps,
            guidanceScale=data.guidanceScale,
            baseModel=data.baseModel,
            outputFormat=data.outputFormat.value,
            adapters=data.adapters,
            sampler=generated.sampler,
            outputParameters=[
                OutputParameters(seed=seed, parameters=text)
                for seed, text in zip(generated.seeds, generated.parameters, strict=True)
            ],
            workerId=self.worker_id,
            attempt=attempt,
            startedAt=started_at,
            completedAt=utcnow(),
            timings=StageTimings(
                loadMs=round(generated.load_ms, 2),
                adapterLoadMs=round(generated.adapter_load_ms, 2),
                adapterSwitchMs=round(generated.adapter_switch_ms, 2),
                computeMs=round(generated.compute_ms, 2),
                uploadMs=round(generated.encode_ms + (time.perf_counter() - upload_started) * 1000, 2),
            ),
        )
        # The marker goes last: its notification is what tells the world the outputs are all there.
        await self.context.store.put_model(job_marker_key(data.jobId, Marker.RESULT), result)
        return result.timings

    async def _fail(self, job_id: str, attempt: int, code: str, message: str) -> None:
        failure = JobFailure(
            jobId=job_id,
            error=JobError(code=code, message=message[:2000]),
            workerId=self.worker_id,
            attempt=attempt,
            failedAt=utcnow(),
        )
        await self.context.store.put_model(job_marker_key(job_id, Marker.FAILED), failure)

    async def _cancel(self, job_id: str, step: int) -> None:
        """The canceled marker (no outputs were written: a canceled run never reaches them)."""
        marker = JobCanceled(jobId=job_id, step=step, workerId=self.worker_id, canceledAt=utcnow())
        await self.context.store.put_model(job_marker_key(job_id, Marker.CANCELED), marker)

    async def _announce_start(self, job: GenerationJob) -> None:
        try:
            await publish_lifecycle_once(self.context, job, GenerationStatus.PROCESSING, source="/lorafoundry/worker")
        except PublishFailed:
            # The status is recorded; a missing "started" event must not stop the job itself.
            log.warning("could not publish the start of job %s", job.jobId, exc_info=True)

    async def _watch(self, job_id: str, cancel: threading.Event) -> None:
        """Until the run ends: read the job every CANCEL_POLL_S and set `cancel` once a cancel is asked of it;
        renew the lease every third of it (and stop watching once it is lost)."""
        last_renewal = time.monotonic()
        while True:
            await asyncio.sleep(CANCEL_POLL_S)  # the polling period, not a synchronisation
            try:
                if not cancel.is_set():
                    job = await self.context.jobs.get_as(job_id, GenerationJob)
                    if job is not None and job.cancelRequested:
                        log.info("cancel asked of job %s: stopping at its next step", job_id)
                        cancel.set()
                if time.monotonic() - last_renewal >= self.lease_seconds / 3:
                    renewed = await self.context.jobs.renew_lease(
                        job_id, self.worker_id, self.lease_seconds, kind=JobKind.GENERATION
                    )
                    if not renewed:
                        log.warning("lost the lease of job %s", job_id)
                        return
                    last_renewal = time.monotonic()
            except Exception:
                # One failed read (a throttled table, a dropped connection) must neither end the watch, which
                # keeps the lease, nor fail a job that may be finishing well: try again at the next tick.
                log.warning("watching job %s: a read failed; trying again", job_id, exc_info=True)
