"""In-memory fakes of the use cases' ports (`events/usecases/ports.py`), for the fast tier.

Each fake keeps what DynamoDB, S3 or Kafka would keep and answers as the adapter in `infra/` does where a use
case depends on it: typed records in and out (stored as documents and parsed on every read, so a caller never
holds the store's own object), `RecordExists` for a taken id, moves by the kind's state machine with the same
outcomes and version bumps, undeclared field names refused (with the adapters' own `declared_fields`), and the
sparse `queue` / `inFlight` partitions. Where a fake reproduces a DynamoDB condition, the method says which.
The integration tier keeps checking the adapters themselves against moto and Tansu.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from events.envelope import CloudEvent, utcnow
from events.persistence import Advance, AdvanceOutcome, PublishFailed, RecordExists, StaleWrite
from events.records.api_keys import ApiKeyRecord
from events.records.base import StoredRecord
from events.records.jobs import JOB_CLASSES, EpochRecord, GenerationJob, PortraitJob, TrainingJob, parse_job
from events.records.models import ModelRecord
from events.records.training_data import TrainingImageRecord
from events.records.uploads import UploadRecord
from events.states import (
    GENERATION,
    KIND_FOR_STATUS,
    MACHINE_FOR_KIND,
    MODEL,
    RUNNING_FOR_KIND,
    ApiKeyStatus,
    JobKind,
    StateMachine,
    TrainingStatus,
    UploadStatus,
)
from events.training import TrainingProgress
from infra.base_models import BaseModelSpec, base_model_registry
from infra.repositories.api_keys import Credentials
from infra.repositories.dynamo import declared_fields
from infra.repositories.jobs import IN_FLIGHT_ATTRIBUTE, QUEUE_ATTRIBUTE, QUEUE_FOR_KIND
from infra.settings import Settings

RecordT = TypeVar("RecordT", bound=StoredRecord)
JobT = TypeVar("JobT", GenerationJob, TrainingJob, PortraitJob)
AnyJob = GenerationJob | TrainingJob | PortraitJob

_CLAUSE = re.compile(r"^(?:attribute_(?P<test>exists|not_exists)\((?P<attr>\w+)\)|#?(?P<name>\w+) = (?P<value>:\w+))$")


def condition_holds(document: Mapping[str, Any] | None, condition: str, values: Mapping[str, Any]) -> bool:
    """Whether a DynamoDB condition holds for `document` (None: no item). Only what callers of `update_fields`
    write is understood: clauses `attribute_exists(a)`, `attribute_not_exists(a)` and `#a = :v` (or `a = :v`)
    joined by AND; anything else raises NotImplementedError rather than guess."""
    for clause in condition.split(" AND "):
        match = _CLAUSE.match(clause.strip().removeprefix("(").removesuffix(")").strip())
        if match is None:
            raise NotImplementedError(f"the fake does not evaluate the condition {clause!r}")
        if match["test"]:
            present = document is not None and document.get(match["attr"]) is not None
            if present != (match["test"] == "exists"):
                return False
        elif document is None or document.get(match["name"]) != _plain(values[match["value"]]):
            return False
    return True


def _plain(value: Any) -> Any:
    """A condition value as a stored document holds it (enums as their words)."""
    return value.value if isinstance(value, StrEnum) else value


class FakeVersionedRepository(Generic[RecordT]):
    """What `infra.repositories.versioned.VersionedRepository` promises, over a dict of documents."""

    key_name = "id"

    def __init__(self, machine: StateMachine) -> None:
        self.machine = machine
        self.documents: dict[str, dict[str, Any]] = {}

    # -- what the table holds (as the adapter's subclasses say it) --------------------------------------------
    def parse(self, document: dict[str, Any]) -> RecordT:
        """A stored document as its record."""
        raise NotImplementedError

    def record_classes(self, target: StrEnum | None = None) -> tuple[type[StoredRecord], ...]:
        """The classes whose fields a partial update may set."""
        raise NotImplementedError

    def machine_for(self, target: StrEnum) -> StateMachine:
        """The state machine that governs a move to `target`."""
        return self.machine

    def fields_to_remove(self, target: StrEnum) -> tuple[str, ...]:
        """Attributes a move to `target` removes."""
        return ()

    # -- helpers ----------------------------------------------------------------------------------------------
    def _read(self, record_id: str) -> RecordT | None:
        document = self.documents.get(record_id)
        return None if document is None else self.parse(copy.deepcopy(document))

    def _stored(self, fields: Mapping[str, Any], target: StrEnum | None = None) -> dict[str, Any]:
        """Partial-update fields as stored values; ValueError for a name the record does not declare."""
        return declared_fields(self.record_classes(target), fields)

    def _write(
        self,
        record_id: str,
        sets: Mapping[str, Any],
        remove: tuple[str, ...] | list[str] = (),
        bump: bool = True,
    ) -> RecordT:
        """Apply stored `sets` (None stores nothing, as DynamoDB's NULL reads back as absent) and `remove` to
        an existing document, bump its version, and store what the record class makes of it (a write that
        leaves an invalid record fails here, where DynamoDB would fail the next read)."""
        document = {**self.documents[record_id], **sets}
        for name in remove:
            document.pop(name, None)
        if bump:
            document["version"] = int(document["version"]) + 1
        record = self.parse({k: v for k, v in document.items() if v is not None})
        self.documents[record_id] = record.to_document()
        return record

    # -- what callers use -------------------------------------------------------------------------------------
    async def create(self, record: RecordT) -> RecordT:
        """Insert at version 1, created and updated now; `RecordExists` if the id is taken (the adapter's
        `attribute_not_exists(<key>)` condition)."""
        record_id = getattr(record, self.key_name)
        if record_id in self.documents:
            raise RecordExists(record_id)
        now = utcnow().isoformat()
        full = record.model_copy(update={"version": 1, "createdAt": now, "updatedAt": now})
        self.documents[record_id] = full.to_document()
        return self._read(record_id)  # type: ignore[return-value]

    async def get(self, record_id: str) -> RecordT | None:
        """The record, or None."""
        return self._read(record_id)

    async def get_for_tenant(self, tenant_id: str, record_id: str) -> RecordT | None:
        """The record if it is `tenant_id`'s; another tenant's looks like none."""
        record = self._read(record_id)
        if record is None or getattr(record, "tenantId", None) != tenant_id:
            return None
        return record

    async def update_fields(
        self,
        record_id: str,
        fields: Mapping[str, Any],
        *,
        expected_version: int | None = None,
        remove: list[str] | tuple[str, ...] = (),
        condition: str | None = None,
        values: dict[str, Any] | None = None,
    ) -> RecordT:
        """Set (and remove) fields without a status change, bumping the version; ValueError for an undeclared
        name; `StaleWrite` when `attribute_exists(<key>)`, the version, or `condition` does not hold."""
        sets = self._stored({**fields, "updatedAt": utcnow().isoformat()})
        self._stored(dict.fromkeys(remove))
        document = self.documents.get(record_id)
        if document is None:
            raise StaleWrite(record_id)
        if expected_version is not None and document["version"] != expected_version:
            raise StaleWrite(record_id)
        if condition and not condition_holds(document, condition, values or {}):
            raise StaleWrite(record_id)
        return self._write(record_id, sets, remove)

    async def advance(
        self,
        record_id: str,
        target: StrEnum,
        fields: Mapping[str, Any] | None = None,
        attempts: int = 5,
        *,
        only_from: StrEnum | None = None,
    ) -> Advance[RecordT]:
        """Move the record to `target` as the adapter's read-check-write does: MISSING, REJECTED (another
        kind's status, or a move the machine forbids), ALREADY (already in that terminal status) or APPLIED
        with `fields` (None values left out) and the version bumped. The conditional write (`#version =
        :expected AND #status IN (predecessors)`) cannot lose here: nothing runs between the read and it."""
        machine = self.machine_for(target)
        given = {k: v for k, v in (fields or {}).items() if v is not None}
        self._stored(given, target)
        record = self._read(record_id)
        if record is None:
            return Advance(AdvanceOutcome.MISSING, None)
        current = getattr(record, "status")  # noqa: B009 - every versioned record has one
        if not isinstance(current, type(target)):
            return Advance(AdvanceOutcome.REJECTED, record)
        if current == target and machine.is_terminal(current):
            return Advance(AdvanceOutcome.ALREADY, record)
        if only_from is not None and current != only_from:
            return Advance(AdvanceOutcome.REJECTED, record)
        if not machine.can_transition(current, target):
            return Advance(AdvanceOutcome.REJECTED, record)
        sets = self._stored({**given, "status": target.value, "updatedAt": utcnow().isoformat()}, target)
        return Advance(AdvanceOutcome.APPLIED, self._write(record_id, sets, self.fields_to_remove(target)))


class FakeJobs(FakeVersionedRepository[AnyJob]):
    """The jobs table (`infra.repositories.jobs.JobRepository`): every kind, each by its own state machine."""

    key_name = "jobId"

    def __init__(self) -> None:
        super().__init__(GENERATION)

    def parse(self, document: dict[str, Any]) -> AnyJob:
        """A stored job as the record class of its kind."""
        return parse_job(document)

    def record_classes(self, target: StrEnum | None = None) -> tuple[type[StoredRecord], ...]:
        """The class of `target`'s kind, or every kind's."""
        if target is not None:
            return (JOB_CLASSES[KIND_FOR_STATUS[type(target)]],)
        return tuple(JOB_CLASSES.values())

    def machine_for(self, target: StrEnum) -> StateMachine:
        """The state machine of `target`'s kind."""
        return MACHINE_FOR_KIND[KIND_FOR_STATUS[type(target)]]

    def fields_to_remove(self, target: StrEnum) -> tuple[str, ...]:
        """Leaving the initial status drops `queue`; a terminal one drops `inFlight` too."""
        machine = self.machine_for(target)
        if target == machine.initial:
            return ()
        if machine.is_terminal(target):
            return (QUEUE_ATTRIBUTE, IN_FLIGHT_ATTRIBUTE)
        return (QUEUE_ATTRIBUTE,)

    @staticmethod
    def _running(kind: JobKind) -> StrEnum:
        running = RUNNING_FOR_KIND[kind]
        if running is None or kind not in QUEUE_FOR_KIND:
            raise ValueError(f"{kind.value} jobs are not claimed by workers")
        return running

    def _all(self) -> list[dict[str, Any]]:
        """Every document, oldest first (the indexes' sort key is `createdAt`)."""
        return sorted(self.documents.values(), key=lambda d: d["createdAt"])

    async def create(self, record: JobT) -> JobT:  # type: ignore[override]
        """Insert in the status it carries; a kind that waits for workers goes in its queue partition."""
        if record.queue is None and record.kind in QUEUE_FOR_KIND:
            record = record.model_copy(update={"queue": QUEUE_FOR_KIND[record.kind]})
        return await super().create(record)  # type: ignore[return-value]

    async def get_as(self, record_id: str, cls: type[JobT]) -> JobT | None:
        """A job of one kind; None if absent or of another."""
        job = self._read(record_id)
        return job if isinstance(job, cls) else None

    async def claim(self, job_id: str, worker_id: str, lease_seconds: int, *, kind: JobKind) -> AnyJob | None:
        """Take a queued job of `kind`, or a running one whose lease lapsed or that `worker_id` holds: the
        adapter's `#kind = :kind AND (#status = :queued OR (#status = :running AND (leaseExpiresAt < :now OR
        leaseOwner = :me)))`; sets the lease, `inFlight`, `attempts + 1` and `startedAt` once, drops `queue`."""
        running = self._running(kind)
        document = self.documents.get(job_id)
        now = utcnow()
        if document is None or document.get("kind", JobKind.GENERATION.value) != kind.value:
            return None
        held = document["status"] == running.value and (
            (document.get("leaseExpiresAt") is not None and document["leaseExpiresAt"] < now.timestamp())
            or document.get("leaseOwner") == worker_id
        )
        if document["status"] != MACHINE_FOR_KIND[kind].initial.value and not held:
            return None
        sets = self._stored(
            {
                "status": running.value,
                IN_FLIGHT_ATTRIBUTE: QUEUE_FOR_KIND[kind],
                "leaseOwner": worker_id,
                "leaseExpiresAt": now.timestamp() + lease_seconds,
                "updatedAt": now.isoformat(),
                "attempts": int(document.get("attempts") or 0) + 1,
                "startedAt": document.get("startedAt") or now.isoformat(),
            },
            running,
        )
        return self._write(job_id, sets, (QUEUE_ATTRIBUTE,))

    async def renew_lease(self, job_id: str, worker_id: str, lease_seconds: int, *, kind: JobKind) -> bool:
        """Extend a lease this worker holds (`#status = :running AND leaseOwner = :me`)."""
        document = self.documents.get(job_id)
        running = self._running(kind).value
        if document is None or document["status"] != running or document.get("leaseOwner") != worker_id:
            return False
        self._write(job_id, self._stored({"leaseExpiresAt": utcnow().timestamp() + lease_seconds}))
        return True

    async def record_progress(self, job_id: str, progress: TrainingProgress) -> bool:
        """Store progress if its `seq` is newer (`attribute_not_exists(progressSeq) OR progressSeq < :seq`)."""
        document = self.documents.get(job_id)
        if document is None or (document.get("progressSeq") is not None and document["progressSeq"] >= progress.seq):
            return False
        self._write(job_id, self._stored({"progress": progress, "progressSeq": progress.seq}, TrainingStatus.RUNNING))
        return True

    async def record_epoch(self, job_id: str, epoch: str, info: EpochRecord) -> bool:
        """Add one finished epoch (`attribute_exists(epochs)`: a training); False if there is none."""
        document = self.documents.get(job_id)
        if document is None or "epochs" not in document:
            return False
        epochs = {**document["epochs"], epoch: info.model_dump(mode="json", exclude_none=True)}
        self._write(job_id, {"epochs": epochs})
        return True

    async def waiting_since_before(self, kind: JobKind, created_before: str) -> list[AnyJob]:
        """Jobs of `kind` in its queue partition, still in its initial status, created before the time."""
        initial = MACHINE_FOR_KIND[kind].initial.value
        return [
            self.parse(copy.deepcopy(d))
            for d in self._all()
            if d.get(QUEUE_ATTRIBUTE) == QUEUE_FOR_KIND[kind]
            and d["createdAt"] < created_before
            and d["status"] == initial
        ]

    async def lease_lapsed(self, kind: JobKind, now_ts: float) -> list[AnyJob]:
        """Jobs of `kind` in its in-flight partition, running, whose lease ended before `now_ts`."""
        running = self._running(kind).value
        return [
            self.parse(copy.deepcopy(d))
            for d in self._all()
            if d.get(IN_FLIGHT_ATTRIBUTE) == QUEUE_FOR_KIND[kind]
            and d["status"] == running
            and d.get("leaseExpiresAt") is not None
            and d["leaseExpiresAt"] < now_ts
        ]

    async def count_queued_before(self, created_at: str, kind: JobKind = JobKind.TRAINING) -> int:
        """How many jobs of `kind` still wait that were created before `created_at`."""
        return len(await self.waiting_since_before(kind, created_at))

    async def list_for_model(self, model_id: str, kind: JobKind | str) -> list[AnyJob]:
        """Every job of one kind for a model, newest first."""
        word = JobKind(kind).value
        documents = [d for d in self._all() if d.get("modelId") == model_id and d.get("kind") == word]
        return [self.parse(copy.deepcopy(d)) for d in reversed(documents)]

    async def mark_published(self, job_id: str, status: StrEnum | str) -> None:
        """Add `status` to `publishedEvents` (an unconditional ADD: no version bump). DynamoDB would create a
        stub item for an unknown id, which no read could parse; the fake ignores one."""
        document = self.documents.get(job_id)
        if document is not None:
            document["publishedEvents"] = {*document.get("publishedEvents", ()), str(status)}


class FakeModels(FakeVersionedRepository[ModelRecord]):
    """Models (`infra.repositories.models.ModelRepository`)."""

    key_name = "modelId"

    def __init__(self) -> None:
        super().__init__(MODEL)

    def parse(self, document: dict[str, Any]) -> ModelRecord:
        """A stored model as its record."""
        return ModelRecord.model_validate(document)

    def record_classes(self, target: StrEnum | None = None) -> tuple[type[StoredRecord], ...]:
        """Models are one class."""
        return (ModelRecord,)

    async def get_live(self, tenant_id: str, model_id: str) -> ModelRecord | None:
        """The tenant's model unless deleted."""
        model = await self.get_for_tenant(tenant_id, model_id)
        return None if model is None or model.deletedAt else model

    async def list_for_tenant(self, tenant_id: str) -> list[ModelRecord]:
        """Every live model of a tenant, newest first."""
        documents = sorted(self.documents.values(), key=lambda d: d["createdAt"], reverse=True)
        return [
            self.parse(copy.deepcopy(d)) for d in documents if d["tenantId"] == tenant_id and not d.get("deletedAt")
        ]

    async def soft_delete(self, model_id: str) -> bool:
        """Mark deleted (`attribute_exists(modelId) AND attribute_not_exists(deletedAt)`); False if it was."""
        document = self.documents.get(model_id)
        if document is None or document.get("deletedAt"):
            return False
        now = utcnow().isoformat()
        self._write(model_id, self._stored({"deletedAt": now, "updatedAt": now}))
        return True


class FakeTrainingData:
    """Training images' records (`infra.repositories.training_data.TrainingDataRepository`)."""

    def __init__(self) -> None:
        self.documents: dict[tuple[str, str], dict[str, Any]] = {}

    async def put(self, item: TrainingImageRecord) -> TrainingImageRecord:
        """Create or replace one image's record; a replacement keeps its createdAt."""
        existing = self.documents.get((item.modelId, item.dataId))
        now = utcnow().isoformat()
        record = item.model_copy(update={"createdAt": existing["createdAt"] if existing else now, "updatedAt": now})
        self.documents[(item.modelId, item.dataId)] = record.to_document()
        return TrainingImageRecord.model_validate(copy.deepcopy(self.documents[(item.modelId, item.dataId)]))

    async def get(self, model_id: str, data_id: str) -> TrainingImageRecord | None:
        """One image's record, or None."""
        document = self.documents.get((model_id, data_id))
        return None if document is None else TrainingImageRecord.model_validate(copy.deepcopy(document))

    async def list(self, model_id: str) -> list[TrainingImageRecord]:
        """Every image of a model, oldest first."""
        documents = [d for (model, _), d in self.documents.items() if model == model_id]
        records = [TrainingImageRecord.model_validate(copy.deepcopy(d)) for d in documents]
        return sorted(records, key=lambda i: (i.createdAt, i.dataId))

    async def delete(self, model_id: str, data_id: str) -> None:
        """Remove one image's record."""
        self.documents.pop((model_id, data_id), None)

    async def set_description(self, model_id: str, data_id: str, description: str | None) -> TrainingImageRecord | None:
        """Set (None: remove) an image's caption in place; None when the image is gone."""
        document = self.documents.get((model_id, data_id))
        if document is None:
            return None
        document.pop("description", None)
        if description is not None:
            document["description"] = description
        document["updatedAt"] = utcnow().isoformat()
        return TrainingImageRecord.model_validate(copy.deepcopy(document))


class FakeUploads:
    """Upload records (`infra.repositories.uploads.UploadRepository`); expired ones read as gone."""

    def __init__(self) -> None:
        self.documents: dict[str, dict[str, Any]] = {}

    async def create(self, record: UploadRecord, expires_in_s: int) -> UploadRecord:
        """Record a new upload expiring in `expires_in_s`. A taken id raises `RecordExists` (the adapter lets
        DynamoDB's failed `attribute_not_exists(uploadId)` through: ids are fresh, so none expects it)."""
        if record.uploadId in self.documents:
            raise RecordExists(record.uploadId)
        now = utcnow().isoformat()
        full = record.model_copy(
            update={"createdAt": now, "updatedAt": now, "expiresAt": int(time.time()) + expires_in_s}
        )
        self.documents[record.uploadId] = full.to_document()
        return full

    async def get(self, upload_id: str) -> UploadRecord | None:
        """One live upload, or None."""
        document = self.documents.get(upload_id)
        if document is None:
            return None
        record = UploadRecord.model_validate(copy.deepcopy(document))
        return None if record.expiresAt <= time.time() else record

    async def get_for_tenant(self, tenant_id: str, upload_id: str) -> UploadRecord | None:
        """The caller's live upload, or None."""
        record = await self.get(upload_id)
        return record if record and record.tenantId == tenant_id else None

    async def settle(self, upload_id: str, status: UploadStatus, fields: Mapping[str, Any]) -> UploadRecord | None:
        """Move a pending upload to `status` (`#status = :pending`); None if it is not pending."""
        values = declared_fields((UploadRecord,), {**fields, "status": status.value, "updatedAt": utcnow().isoformat()})
        document = self.documents.get(upload_id)
        if document is None or document["status"] != UploadStatus.PENDING.value:
            return None
        record = UploadRecord.model_validate({k: v for k, v in {**document, **values}.items() if v is not None})
        self.documents[upload_id] = record.to_document()
        return record


class FakeStore:
    """The artifacts bucket: bytes by key; presigned URLs are fake but name the key."""

    def __init__(self, bucket: str = "fake-artifacts") -> None:
        self.bucket = bucket
        self.objects: dict[str, bytes] = {}
        self.content_types: dict[str, str] = {}

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        """Write an object."""
        self.objects[key] = bytes(data)
        self.content_types[key] = content_type

    async def put_model(self, key: str, model: BaseModel) -> None:
        """Write a pydantic model as JSON."""
        await self.put_bytes(key, model.model_dump_json().encode(), "application/json")

    async def get_bytes(self, key: str) -> bytes | None:
        """An object's bytes, or None."""
        return self.objects.get(key)

    async def get_json(self, key: str) -> Any | None:
        """A JSON object parsed, or None."""
        data = self.objects.get(key)
        return None if data is None else json.loads(data)

    async def delete(self, key: str) -> None:
        """Remove an object (absent is fine)."""
        self.objects.pop(key, None)
        self.content_types.pop(key, None)

    async def list_keys(self, prefix: str) -> list[str]:
        """Every key under a prefix, in S3's (lexicographic) order."""
        return sorted(k for k in self.objects if k.startswith(prefix))

    async def get_range(self, key: str, start: int, end: int) -> tuple[bytes, int] | None:
        """Bytes `start`..`end` (inclusive) and the object's size, or None."""
        data = self.objects.get(key)
        return None if data is None else (data[start : end + 1], len(data))

    async def size(self, key: str) -> int | None:
        """An object's size, or None."""
        data = self.objects.get(key)
        return None if data is None else len(data)

    async def presign_get(self, key: str, expires_in: int, file_name: str | None = None) -> str:
        """A fake GET URL for one object."""
        named = f"&filename={file_name}" if file_name else ""
        return f"https://fake-s3.invalid/{self.bucket}/{key}?expires={expires_in}{named}"

    async def presign_post(self, key: str, max_bytes: int, expires_in: int) -> dict[str, Any]:
        """A fake POST upload form for one object."""
        return {"url": f"https://fake-s3.invalid/{self.bucket}", "fields": {"key": key}, "maxBytes": max_bytes}


class FakeApiKeys:
    """Active API keys by raw key (`infra.repositories.api_keys.ApiKeyRepository`, less the hashing and cache)."""

    def __init__(self) -> None:
        self.records: dict[str, ApiKeyRecord] = {}

    def add(self, raw_key: str, tenant_id: str, signing_secret: str | None = None) -> ApiKeyRecord:
        """Issue `raw_key` to `tenant_id`."""
        key_hash = hashlib.sha256(raw_key.encode()).hexdigest()
        record = ApiKeyRecord(
            keyHash=key_hash,
            keyId=f"key_{key_hash[:12]}",
            tenantId=tenant_id,
            name="test",
            signingSecret=signing_secret,
        )
        self.records[raw_key] = record
        return record

    async def lookup(self, raw_key: str) -> ApiKeyRecord | None:
        """The active key's record, or None."""
        record = self.records.get(raw_key)
        return record if record and record.status is ApiKeyStatus.ACTIVE else None

    async def authenticate(self, credentials: Credentials) -> ApiKeyRecord | None:
        """The key's record if it is active and, when a secret is presented, the secret is the key's."""
        record = await self.lookup(credentials.api_key)
        if record is None or (credentials.secret is not None and credentials.secret != record.signingSecret):
            return None
        return record

    async def tenant_for(self, raw_key: str) -> str | None:
        """The tenant of an active key, or None."""
        record = await self.lookup(raw_key)
        return record.tenantId if record else None


@dataclass(frozen=True)
class Sent:
    """One event the broker acknowledged: its topic, the event, and the message key it went with."""

    topic: str
    event: CloudEvent[Any]
    key: str


class FakePublisher:
    """The broker: records what it acknowledged; can be told to refuse (`PublishFailed`, as
    `infra.kafka.EventPublisher` raises) every send or the next `n`, or to hang (for the timeout path)."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self.refused: list[Sent] = []  # what it was asked to send while refusing
        self.attempts = 0
        self.failing = False
        self.failures_left = 0
        self.hanging = False

    def fail(self, times: int | None = None) -> None:
        """Refuse every send from now on, or only the next `times`."""
        if times is None:
            self.failing = True
        else:
            self.failures_left = times

    def hang(self) -> None:
        """Never answer a send from now on (the caller's timeout must end it)."""
        self.hanging = True

    def recover(self) -> None:
        """Take every send again."""
        self.failing = self.hanging = False
        self.failures_left = 0

    async def publish(self, topic: str, event: CloudEvent[Any], key: str | None = None) -> None:
        """Send one event, keyed by its subject unless `key` is given."""
        self.attempts += 1
        if self.hanging:
            await asyncio.Event().wait()
        if self.failing or self.failures_left > 0:
            self.failures_left = max(0, self.failures_left - 1)
            self.refused.append(Sent(topic, event, key or event.subject))
            raise PublishFailed(f"{topic}: the fake broker is down")
        self.sent.append(Sent(topic, event, key or event.subject))

    def on(self, topic: str) -> list[Sent]:
        """What was acknowledged on one topic, in order."""
        return [s for s in self.sent if s.topic == topic]


class FakeBackends:
    """Everything a use case may reach, named as on `infra.runtime.ServiceContext`, in memory; with API keys,
    enough of a context for the API's requests that need nothing else (`app.state.context = FakeBackends()`)."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings(_env_file=None)  # type: ignore[call-arg]
        self.jobs = FakeJobs()
        self.models = FakeModels()
        self.training_data = FakeTrainingData()
        self.uploads = FakeUploads()
        self.store = FakeStore(self.settings.bucket)
        self.publisher = FakePublisher()
        self.base_models: dict[str, BaseModelSpec] = base_model_registry(self.settings)
        self.api_keys = FakeApiKeys()
        # --- issue 15: quotas ---
        self.tenants = FakeTenants()
        self.rate_limits = FakeRateLimits()
        self.job_counts = FakeJobCounts(self.jobs)

    async def close(self) -> None:
        """Nothing to close (the API's shutdown closes its context)."""

    # --- issue 16: run-time base models ---
    # Nothing is registered at run time here: the registry is the settings' (tests may set `base_models`).
    registered_base_model_sources: dict[str, object] = {}

    async def refresh_base_models(self) -> dict[str, BaseModelSpec]:
        """The registry as it is (ServiceContext's renews the registered base models)."""
        return self.base_models


__all__ = [
    "FakeApiKeys",
    "FakeBackends",
    "FakeJobs",
    "FakeModels",
    "FakePublisher",
    "FakeStore",
    "FakeTrainingData",
    "FakeUploads",
    "Sent",
    "condition_holds",
]


# --- issue 15: quotas ---
from datetime import datetime  # noqa: E402

from events.records.tenants import TenantRecord  # noqa: E402
from infra.repositories.rate_limits import RateDecision, rate_window  # noqa: E402


class FakeTenants:
    """Tenants (`infra.repositories.tenants.TenantRepository`): records by id, stored bytes counted as its
    conditional update does."""

    def __init__(self) -> None:
        self.documents: dict[str, dict[str, Any]] = {}

    async def create(self, record: TenantRecord) -> TenantRecord:
        """Insert a new tenant (`attribute_not_exists(tenantId)`: a taken id raises `RecordExists`)."""
        if record.tenantId in self.documents:
            raise RecordExists(record.tenantId)
        self.documents[record.tenantId] = record.to_document()
        return record

    async def get(self, tenant_id: str, *, cached: bool = False) -> TenantRecord | None:
        """The tenant's record, or None (the fake has no cache: every read is fresh)."""
        document = self.documents.get(tenant_id)
        return None if document is None else TenantRecord.model_validate(copy.deepcopy(document))

    async def add_storage(self, tenant_id: str, delta: int, *, limit: int | None = None) -> bool:
        """Add `delta` bytes; with `limit`, only while the total stays within it (`storageBytes <= :room`).
        A tenant without a record gets one."""
        document = self.documents.setdefault(tenant_id, TenantRecord(tenantId=tenant_id).to_document())
        stored = int(document.get("storageBytes") or 0)
        if limit is not None and delta > 0 and stored + delta > limit:
            return False
        document["storageBytes"] = stored + delta
        return True


class FakeRateLimits:
    """Fixed-window request counters by key (`infra.repositories.rate_limits.RateLimitRepository`), on a clock
    a test sets (`now`)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.hits: dict[tuple[str, int], int] = {}

    async def hit(self, key_id: str, requests_per_second: float) -> RateDecision:
        """Count one request in the key's current window unless it is full (`hits < :allowed`)."""
        window, allowed = rate_window(requests_per_second)
        start = int(self.now // window) * window
        if self.hits.get((key_id, start), 0) >= allowed:
            return RateDecision(False, max(1, int(start + window - self.now + 0.999)))
        self.hits[(key_id, start)] = self.hits.get((key_id, start), 0) + 1
        return RateDecision(True)


class FakeJobCounts:
    """Active jobs per tenant (`infra.repositories.job_counts.JobCountRepository`): the fake jobs' `queue` and
    `inFlight` partitions, a portrait's own generations left out (its training counts)."""

    def __init__(self, jobs: FakeJobs) -> None:
        self.jobs = jobs

    async def active(self, tenant_id: str, kind: JobKind) -> int:
        """The tenant's jobs of `kind` queued or running."""
        partition = QUEUE_FOR_KIND[kind]
        return sum(
            1
            for d in self.jobs.documents.values()
            if d.get("tenantId") == tenant_id
            and not (kind is JobKind.GENERATION and d.get("portraitId"))
            and partition in (d.get(QUEUE_ATTRIBUTE), d.get(IN_FLIGHT_ATTRIBUTE))
        )

    async def soonest_end_s(self, tenant_id: str, kind: JobKind) -> float | None:
        """Seconds until the first of the tenant's held jobs of `kind` with an estimate should end."""
        now = utcnow().timestamp()
        ends = [
            datetime.fromisoformat(d["startedAt"]).timestamp() + float(d["estimatedSeconds"]) - now
            for d in self.jobs.documents.values()
            if d.get("tenantId") == tenant_id
            and d.get(IN_FLIGHT_ATTRIBUTE) == QUEUE_FOR_KIND[kind]
            and d.get("startedAt")
            and d.get("estimatedSeconds") is not None
        ]
        return min(ends) if ends else None
