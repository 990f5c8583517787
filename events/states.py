"""Job state machines, table-driven and pure.

Every status write in DynamoDB is conditional on `allowed_predecessors(target)`, so a duplicate or
reordered notification can never move a job backwards or out of a terminal state.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class JobKind(StrEnum):
    """The three kinds of job in the jobs table, each with its own state machine."""

    GENERATION = "generation"
    TRAINING = "training"
    PORTRAIT = "portrait"


class GenerationStatus(StrEnum):
    """Life of a generation job, in the Realm-style images API's words (plus canceled)."""

    QUEUED = "queued"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


class TrainingStatus(StrEnum):
    """Life of a training job (internal words; the custom-models API renders them as predictions do)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


class ModelStatus(StrEnum):
    """Life of a model, in the Scenario-style API's words."""

    NEW = "new"
    TRAINING = "training"
    TRAINED = "trained"
    FAILED = "failed"
    TRAINING_CANCELED = "training-canceled"


class PortraitStatus(StrEnum):
    """Life of a headshot portrait job: train the person's LoRA, then generate each chosen style."""

    TRAINING = "training"
    GENERATING = "generating"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"


class UploadStatus(StrEnum):
    """Where an upload (and the training image it stands for) stands: validated once, out of `pending`."""

    PENDING = "pending"
    READY = "ready"
    REJECTED = "rejected"


class IdempotencyStatus(StrEnum):
    """Where the first request of an idempotency key is."""

    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


class ApiKeyStatus(StrEnum):
    """Whether an API key still opens the door."""

    ACTIVE = "active"
    REVOKED = "revoked"


class TenantStatus(StrEnum):
    """Whether a tenant's keys are served: a suspended tenant's requests are refused (403), its data kept."""

    ACTIVE = "active"
    SUSPENDED = "suspended"


class WorkerKind(StrEnum):
    """The two kinds of GPU worker, each its own consumer group."""

    GENERATOR = "generator"
    TRAINER = "trainer"


class DeliveryStatus(StrEnum):
    """Where a webhook delivery stands: pending until delivered, gone (410) or given up."""

    PENDING = "pending"
    DELIVERED = "delivered"
    GONE = "gone"
    FAILED = "failed"


class IllegalTransition(ValueError):
    """A requested status change that the state machine does not allow."""


class StateMachine:
    """A transition table: for each state, the states it may move to."""

    def __init__(self, transitions: Mapping[StrEnum, frozenset[StrEnum]], initial: StrEnum) -> None:
        self.transitions = transitions
        self.initial = initial
        self.states = frozenset(transitions)
        self.terminal = frozenset(s for s, nxt in transitions.items() if not nxt)

    def can_transition(self, current: StrEnum, target: StrEnum) -> bool:
        """Whether `current -> target` is an allowed move."""
        return target in self.transitions[current]

    def check(self, current: StrEnum, target: StrEnum) -> None:
        """Raise IllegalTransition unless `current -> target` is allowed."""
        if not self.can_transition(current, target):
            raise IllegalTransition(f"cannot move from {current.value} to {target.value}")

    def is_terminal(self, state: StrEnum) -> bool:
        """Terminal states are final: nothing leaves them."""
        return state in self.terminal

    def allowed_predecessors(self, target: StrEnum) -> frozenset[StrEnum]:
        """The states from which `target` may be reached (the condition of a DynamoDB write)."""
        return frozenset(s for s, nxt in self.transitions.items() if target in nxt)


_G = GenerationStatus
GENERATION = StateMachine(
    {
        _G.QUEUED: frozenset({_G.PROCESSING, _G.FAILED, _G.CANCELED}),
        # processing -> processing is a reclaim: another worker takes over a job whose lease lapsed.
        _G.PROCESSING: frozenset({_G.PROCESSING, _G.COMPLETED, _G.FAILED, _G.CANCELED}),
        _G.COMPLETED: frozenset(),
        _G.FAILED: frozenset(),
        _G.CANCELED: frozenset(),
    },
    initial=_G.QUEUED,
)

_T = TrainingStatus
TRAINING = StateMachine(
    {
        _T.QUEUED: frozenset({_T.RUNNING, _T.FAILED, _T.CANCELED}),
        # running -> running is a reclaim after a lapsed lease: the new worker resumes from the last checkpoint.
        _T.RUNNING: frozenset({_T.RUNNING, _T.SUCCEEDED, _T.FAILED, _T.CANCELED}),
        _T.SUCCEEDED: frozenset(),
        _T.FAILED: frozenset(),
        _T.CANCELED: frozenset(),
    },
    initial=_T.QUEUED,
)

_M = ModelStatus
MODEL = StateMachine(
    {
        _M.NEW: frozenset({_M.TRAINING}),
        _M.TRAINING: frozenset({_M.TRAINED, _M.FAILED, _M.TRAINING_CANCELED}),
        # A model is never finished: it can be trained again, after success, failure or cancel.
        _M.TRAINED: frozenset({_M.TRAINING}),
        _M.FAILED: frozenset({_M.TRAINING}),
        _M.TRAINING_CANCELED: frozenset({_M.TRAINING}),
    },
    initial=_M.NEW,
)

_P = PortraitStatus
PORTRAIT = StateMachine(
    {
        _P.TRAINING: frozenset({_P.GENERATING, _P.FAILED, _P.CANCELED}),
        _P.GENERATING: frozenset({_P.COMPLETED, _P.FAILED, _P.CANCELED}),
        _P.COMPLETED: frozenset(),
        _P.FAILED: frozenset(),
        _P.CANCELED: frozenset(),
    },
    initial=_P.TRAINING,
)

# The statuses a LoRA import (`PUT /v1/models/{id}/adapter`) may replace with `trained`: any but `training`
# (a running training would overwrite it; the import is refused with 409). Not rows of MODEL on purpose: there,
# `trained -> trained` would let a training's redelivered or late result marker (`settle_model`) move the
# model again and take back the adapter an import put in its place. The import writes `trained` by a
# conditional update of its own, on the model's version and one of these statuses.
MODEL_IMPORT_FROM: frozenset[ModelStatus] = frozenset({_M.NEW, _M.TRAINED, _M.FAILED, _M.TRAINING_CANCELED})

# The model status a training's terminal status leaves its model in.
MODEL_STATUS_AFTER_TRAINING = {
    TrainingStatus.SUCCEEDED: ModelStatus.TRAINED,
    TrainingStatus.FAILED: ModelStatus.FAILED,
    TrainingStatus.CANCELED: ModelStatus.TRAINING_CANCELED,
}

JobStatus = GenerationStatus | TrainingStatus | PortraitStatus

# Each kind's state machine, its status enum, and the status a worker's claim moves a queued job to (None:
# nobody claims it; a portrait is moved along by the portrait flow).
MACHINE_FOR_KIND: Mapping[JobKind, StateMachine] = {
    JobKind.GENERATION: GENERATION,
    JobKind.TRAINING: TRAINING,
    JobKind.PORTRAIT: PORTRAIT,
}
STATUS_FOR_KIND: Mapping[JobKind, type[StrEnum]] = {
    JobKind.GENERATION: GenerationStatus,
    JobKind.TRAINING: TrainingStatus,
    JobKind.PORTRAIT: PortraitStatus,
}
KIND_FOR_STATUS: Mapping[type[StrEnum], JobKind] = {status: kind for kind, status in STATUS_FOR_KIND.items()}
RUNNING_FOR_KIND: Mapping[JobKind, StrEnum | None] = {
    JobKind.GENERATION: GenerationStatus.PROCESSING,
    JobKind.TRAINING: TrainingStatus.RUNNING,
    JobKind.PORTRAIT: None,
}


def job_status(kind: JobKind, value: str) -> StrEnum:
    """`value` as the status enum of `kind`; ValueError if that kind has no such status."""
    return STATUS_FOR_KIND[kind](value)
