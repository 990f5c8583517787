"""A trainer asked to stop hands its training back at the next step: no marker, its lease ended at once and its
record left uncommitted (HandBack), so another trainer claims it straight away (fakes; the loop is a stub that
steps until told to stop, so no model is loaded)."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from events.states import JobKind, TrainingStatus
from events.storage_keys import Marker, training_marker_key
from events.training import TrainingRequested
from events.usecases import jobs
from tests.fakes import FakeBackends
from tests.support import training_request
from workers.consumer import HandBack
from workers.trainer import job as trainer_job
from workers.trainer.inputs import TrainingInputs
from workers.trainer.loop import TrainingOutcome


async def _runner_with_a_stub_loop(monkeypatch: pytest.MonkeyPatch, stopping: asyncio.Event, executor) -> tuple:
    context = FakeBackends()
    data = training_request("trn_1")
    await jobs.record_job(context, jobs.training_record("tenant", data))
    stepping = threading.Event()

    async def inputs(store, request):  # no images to decode: the stub loop needs none
        return TrainingInputs(images=[], resume=None, epochs_done=[])

    def train(self, request, loaded, bridge) -> TrainingOutcome:
        stepping.set()
        step = 0
        while not bridge.should_stop():  # one "step" per iteration, as LoraTrainer.run checks
            step += 1
            threading.Event().wait(0.001)  # a step's work
        return TrainingOutcome(None, step, None, canceled=True, resumed_from_step=0)

    monkeypatch.setattr(trainer_job, "load_training_inputs", inputs)
    monkeypatch.setattr(trainer_job.TrainingJobRunner, "_train", train)
    runner = trainer_job.TrainingJobRunner(context, "worker-a", executor, stopping)  # type: ignore[arg-type]
    event = TrainingRequested(subject="trn_1", tenantid="tenant", data=data)
    return context, runner, event, stepping


async def test_a_stopping_trainer_hands_its_training_back(monkeypatch: pytest.MonkeyPatch) -> None:
    stopping = asyncio.Event()
    with ThreadPoolExecutor(max_workers=1) as executor:
        context, runner, event, stepping = await _runner_with_a_stub_loop(monkeypatch, stopping, executor)
        running = asyncio.create_task(runner(event))
        await asyncio.to_thread(stepping.wait, 5)
        stopping.set()  # SIGTERM
        with pytest.raises(HandBack):
            await asyncio.wait_for(running, 10)

    store = context.store
    for marker in (Marker.RESULT, Marker.CANCELED, Marker.FAILED):
        assert await store.get_bytes(training_marker_key("trn_1", marker)) is None
    job = await context.jobs.get("trn_1")
    assert job.status is TrainingStatus.RUNNING and job.leaseOwner == "worker-a"
    # Another trainer claims it at once, without waiting for the lease or the reconciler.
    claimed = await context.jobs.claim("trn_1", "worker-b", 120, kind=JobKind.TRAINING)
    assert claimed is not None and claimed.leaseOwner == "worker-b" and claimed.attempts == 2
