"""The trainings use case on fakes: what refuses a training, what a broker down leaves behind, canceling in
each status, and that a late outcome of an older training leaves a newer one's model alone."""

from __future__ import annotations

import pytest

from events.lifecycle import JOB_CANCELED
from events.records.jobs import TrainingJob
from events.records.models import ModelRecord
from events.states import ModelStatus, TrainingStatus, UploadStatus
from events.topics import JOB_LIFECYCLE, TRAINING_REQUESTS
from events.training import TrainingRequested
from events.usecases import trainings
from events.usecases.errors import Conflict, Invalid, Unavailable
from tests.fakes import FakeBackends
from tests.usecases.builders import (
    SOURCE,
    TENANT,
    add_images,
    finish_training,
    new_model,
    run_training,
    start,
    trainable_model,
)


async def test_a_training_is_queued_on_the_ready_images_keyed_by_its_model(backends: FakeBackends) -> None:
    model = await trainable_model(backends, images=2)
    await add_images(backends, model.modelId, 1, UploadStatus.REJECTED)
    training = await start(backends, model, extra={"portraitId": "prt_x"})
    stored = await backends.jobs.get_as(training.jobId, TrainingJob)
    assert stored is not None and stored.status is TrainingStatus.QUEUED and stored.queue == "training"
    assert stored.portraitId == "prt_x"
    assert sorted(stored.dataIds or []) == ["dat_ready_0", "dat_ready_1"]
    assert len(stored.request.dataKeys) == 2
    model_now = await backends.models.get(model.modelId)
    assert model_now is not None and model_now.status is ModelStatus.TRAINING
    assert model_now.trainingId == training.jobId and model_now.triggerWord == training.triggerWord
    [sent] = backends.publisher.sent
    assert (sent.topic, sent.key) == (TRAINING_REQUESTS, model.modelId)
    assert isinstance(sent.event, TrainingRequested) and sent.event.data == stored.request


async def test_a_composition_is_not_trainable(backends: FakeBackends) -> None:
    model = await new_model(backends, model_type="sd-1_5-composition")
    await add_images(backends, model.modelId, 1)
    with pytest.raises(Invalid) as raised:
        await start(backends, model)
    assert raised.value.code == "not_trainable"
    assert backends.jobs.documents == {} and backends.publisher.sent == []


async def test_images_still_pending_refuse_the_training(backends: FakeBackends) -> None:
    model = await trainable_model(backends, images=1)
    await add_images(backends, model.modelId, 2, UploadStatus.PENDING)
    with pytest.raises(Conflict) as raised:
        await start(backends, model)
    assert raised.value.code == "training_data_pending" and "2 training image(s)" in raised.value.message
    model_now = await backends.models.get(model.modelId)
    assert model_now is not None and model_now.status is ModelStatus.NEW


async def test_no_images_refuse_the_training(backends: FakeBackends) -> None:
    model = await new_model(backends)
    await add_images(backends, model.modelId, 1, UploadStatus.REJECTED)
    with pytest.raises(Conflict) as raised:
        await start(backends, model)
    assert (raised.value.code, raised.value.field) == ("no_training_data", "modelId")


async def test_a_model_already_training_refuses_a_second_training(backends: FakeBackends) -> None:
    model = await trainable_model(backends)
    first = await start(backends, model)
    with pytest.raises(Conflict) as raised:
        await start(backends, model)
    assert raised.value.code == "model_training" and first.jobId in raised.value.message
    assert list(backends.jobs.documents) == [first.jobId]
    with pytest.raises(Conflict):
        trainings.check_trainable_now(await backends.models.get(model.modelId), 1)  # type: ignore[arg-type]


async def test_a_broker_down_fails_the_training_and_its_model(backends: FakeBackends) -> None:
    model = await trainable_model(backends)
    backends.publisher.fail()
    with pytest.raises(Unavailable) as raised:
        await start(backends, model)
    assert raised.value.code == "queue_unavailable" and "training queue" in raised.value.message
    [training] = [await backends.jobs.get_as(job_id, TrainingJob) for job_id in backends.jobs.documents]
    assert training is not None and training.status is TrainingStatus.FAILED
    assert training.error is not None and training.error.code == "queue_unavailable"
    model_now = await backends.models.get(model.modelId)
    assert model_now is not None and model_now.status is ModelStatus.FAILED
    # A failed model can be trained again once the broker is back.
    backends.publisher.recover()
    assert (await start(backends, model_now)).status is TrainingStatus.QUEUED


async def test_canceling_a_queued_training_ends_it_and_its_model_and_says_so_once(backends: FakeBackends) -> None:
    model = await trainable_model(backends)
    training = await start(backends, model)
    canceled = await trainings.cancel_training(backends, training, source=SOURCE)
    assert canceled.status is TrainingStatus.CANCELED and canceled.canceledBy == "user" and canceled.completedAt
    assert canceled.queue is None
    model_now = await backends.models.get(model.modelId)
    assert model_now is not None and model_now.status is ModelStatus.TRAINING_CANCELED
    # Asked again (a retried request), it is over: nothing more is published.
    with pytest.raises(Conflict) as raised:
        await trainings.cancel_training(backends, canceled, source=SOURCE)
    assert raised.value.code == "training_finished" and "already canceled" in raised.value.message
    events = backends.publisher.on(JOB_LIFECYCLE)
    assert [(e.event.type, e.event.data.status) for e in events] == [(JOB_CANCELED, TrainingStatus.CANCELED)]
    stored = await backends.jobs.get_as(training.jobId, TrainingJob)
    assert stored is not None and stored.publishedEvents == {"canceled"}


async def test_canceling_a_running_training_asks_its_worker_to_stop(backends: FakeBackends) -> None:
    training = await run_training(backends, await start(backends, await trainable_model(backends)))
    asked = await trainings.cancel_training(backends, training, source=SOURCE)
    assert asked.status is TrainingStatus.RUNNING and asked.cancelRequested is True and asked.cancelRequestedAt
    assert asked.version == training.version + 1
    assert backends.publisher.on(JOB_LIFECYCLE) == []


async def test_a_cancel_read_as_queued_but_claimed_since_asks_the_worker_instead_of_ending_it(
    backends: FakeBackends,
) -> None:
    model = await trainable_model(backends)
    queued = await start(backends, model)
    await run_training(backends, queued)  # a worker claims it after the caller read it as queued
    asked = await trainings.cancel_training(backends, queued, source=SOURCE)
    assert asked.status is TrainingStatus.RUNNING and asked.cancelRequested is True
    model_now = await backends.models.get(model.modelId)
    assert model_now is not None and model_now.status is ModelStatus.TRAINING
    assert backends.publisher.on(JOB_LIFECYCLE) == []


@pytest.mark.parametrize("word", ["succeeded", "failed"])
async def test_canceling_a_finished_training_is_a_conflict(backends: FakeBackends, word: str) -> None:
    running = await run_training(backends, await start(backends, await trainable_model(backends)))
    ended = (await backends.jobs.advance(running.jobId, TrainingStatus(word))).record
    assert isinstance(ended, TrainingJob)
    with pytest.raises(Conflict) as raised:
        await trainings.cancel_training(backends, ended, source=SOURCE)
    assert raised.value.code == "training_finished" and f"already {word}" in raised.value.message
    # The stale record in hand says running: the conditional write finds it finished all the same.
    with pytest.raises(Conflict):
        await trainings.cancel_training(backends, running, source=SOURCE)
    stored = await backends.jobs.get_as(running.jobId, TrainingJob)
    assert stored is not None and stored.cancelRequested is None


async def test_a_late_outcome_of_an_older_training_leaves_a_newer_ones_model_alone(backends: FakeBackends) -> None:
    model = await trainable_model(backends)
    older = await run_training(backends, await start(backends, model))
    await finish_training(backends, older)
    newer = await start(backends, (await backends.models.get(model.modelId)))  # type: ignore[arg-type]
    late = (await backends.jobs.advance(older.jobId, TrainingStatus.SUCCEEDED)).record
    assert isinstance(late, TrainingJob)
    assert await trainings.settle_model(backends, late, TrainingStatus.FAILED) is None
    model_now = await backends.models.get(model.modelId)
    assert model_now is not None and model_now.status is ModelStatus.TRAINING and model_now.trainingId == newer.jobId
    # The current training's own outcome does move it.
    settled = await trainings.settle_model(backends, newer, TrainingStatus.FAILED)
    assert settled is not None and settled.record is not None and settled.record.status is ModelStatus.FAILED


async def test_described_images_train_on_their_captions_with_the_models_trigger_word(backends: FakeBackends) -> None:
    model = await trainable_model(backends, images=3)
    [first, second, third] = await backends.training_data.list(model.modelId)
    await backends.training_data.put(first.model_copy(update={"description": "a cat on a red sofa"}))
    await backends.training_data.put(third.model_copy(update={"description": "daiton cat asleep in the sun"}))
    training = await start(backends, model, request_parameters={"conceptPrompt": "daiton cat"})
    request = training.request
    by_key = dict(zip(request.dataKeys, request.captions or [], strict=True))
    # The word the model's prompts use (its triggerWord: here the concept prompt) is the one woven in.
    assert training.triggerWord == "daiton cat"
    assert by_key[first.key] == "daiton cat, a cat on a red sofa"
    assert by_key[second.key] is None, "no description: the concept prompt (or an automatic caption)"
    assert by_key[third.key] == "daiton cat asleep in the sun"


async def test_a_set_placing_its_trigger_word_trains_its_regularisation_captions_as_written(
    backends: FakeBackends,
) -> None:
    model = await trainable_model(backends, images=2)
    [first, second] = await backends.training_data.list(model.modelId)
    await backends.training_data.put(first.model_copy(update={"description": "a red [trigger] on a white background"}))
    await backends.training_data.put(second.model_copy(update={"description": "a red circle on a white background"}))
    training = await start(backends, model, request_parameters={"conceptPrompt": "zxq"})
    by_key = dict(zip(training.request.dataKeys, training.request.captions or [], strict=True))
    assert by_key[first.key] == "a red zxq on a white background"
    assert by_key[second.key] == "a red circle on a white background", "a regularisation picture: no trigger word"


async def test_a_training_takes_its_bases_family_defaults(backends: FakeBackends) -> None:
    model = await backends.models.create(
        ModelRecord(modelId="mdl_flux", tenantId=TENANT, name="Cat", baseModel="tiny-flux", type="flux.1-lora")
    )
    await add_images(backends, model.modelId, 2)
    training = await start(backends, model, request_parameters={"nbEpochs": 2, "nbRepeats": 3})
    parameters = training.request.parameters
    assert (parameters.maxTrainSteps, parameters.rank, parameters.learningRate) == (12, 16, 1e-4)
    assert training.request.captions is None and parameters.autoCaption is False
    with pytest.raises(Invalid) as raised:
        await start(backends, model, request_parameters={"rank": 100})
    assert raised.value.field == "rank"
