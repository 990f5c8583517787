"""The jobs table (generations, trainings, portraits): claimed with a lease, moved by conditional writes.

One repository for the whole table: the state machine, the status a claim moves a job to and the sparse
indexes' partition are picked by the job's kind (given, or implied by a target status's enum type).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, TypeVar, overload

from botocore.exceptions import ClientError

from events.envelope import utcnow
from events.records.base import StoredRecord
from events.records.jobs import JOB_CLASSES, EpochRecord, GenerationJob, Job, PortraitJob, TrainingJob, parse_job
from events.states import (
    GENERATION,
    KIND_FOR_STATUS,
    MACHINE_FOR_KIND,
    RUNNING_FOR_KIND,
    GenerationStatus,
    JobKind,
    PortraitStatus,
    StateMachine,
    TrainingStatus,
)
from events.training import TrainingProgress
from infra.repositories.dynamo import count_all_pages, from_item, is_condition_failure, query_all, serialize
from infra.repositories.versioned import (
    Advance,
    AdvanceOutcome,
    RecordExists,
    StaleWrite,
    VersionedRepository,
)
from infra.resources import JOBS_BY_MODEL_INDEX, JOBS_BY_TENANT_INDEX, JOBS_IN_FLIGHT_INDEX, JOBS_QUEUE_INDEX

JobExists = RecordExists

# Set on a job while it waits (sparse index: claimed and finished jobs drop out of it).
QUEUE_ATTRIBUTE = "queue"
# Set on a job while a worker holds it (sparse index: where the reconciler looks for lapsed leases).
IN_FLIGHT_ATTRIBUTE = "inFlight"
JOB_QUEUE_TRAINING = "training"
JOB_QUEUE_GENERATION = "generation"
# The sparse indexes' partition of each kind that waits for workers (portraits wait for nobody).
QUEUE_FOR_KIND: dict[JobKind, str] = {JobKind.GENERATION: JOB_QUEUE_GENERATION, JobKind.TRAINING: JOB_QUEUE_TRAINING}
QUEUED_KINDS = tuple(QUEUE_FOR_KIND)

AnyJob = GenerationJob | TrainingJob | PortraitJob
JobT = TypeVar("JobT", GenerationJob, TrainingJob, PortraitJob)

__all__ = [
    "QUEUED_KINDS",
    "Advance",
    "AdvanceOutcome",
    "InvalidCursor",
    "Job",
    "JobExists",
    "JobPage",
    "JobRepository",
    "StaleWrite",
    "decode_cursor",
    "encode_cursor",
]

# -- the history's cursor ---------------------------------------------------------------------------------------
# A position in a tenant's `byTenant` partition is the key of the last job read there: the table's key and the
# index's. The cursor is that key as compact JSON in unpadded base64url, opaque to clients.
CURSOR_FIELDS = ("jobId", "tenantId", "createdAt")
MAX_CURSOR_CHARS = 1024
MAX_CURSOR_FIELD_CHARS = 256


class InvalidCursor(ValueError):
    """A history cursor that this service did not hand to this tenant (malformed, altered or another's)."""


def encode_cursor(key: dict[str, str]) -> str:
    """The opaque cursor of a position in a tenant's history (`key`: jobId, tenantId, createdAt)."""
    document = json.dumps({name: key[name] for name in CURSOR_FIELDS}, separators=(",", ":"))
    return base64.urlsafe_b64encode(document.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, tenant_id: str) -> dict[str, str]:
    """The position a cursor names, checked to be one of `tenant_id`'s history; `InvalidCursor` otherwise, so
    that nothing a client makes up is ever sent to DynamoDB as a start key (nor reads another partition)."""
    if not cursor or len(cursor) > MAX_CURSOR_CHARS:
        raise InvalidCursor("the cursor is empty or too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw)
    except (binascii.Error, ValueError) as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise InvalidCursor("the cursor is not one this service issued") from exc
    if not isinstance(key, dict) or set(key) != set(CURSOR_FIELDS):
        raise InvalidCursor("the cursor is not one this service issued")
    if not all(isinstance(v, str) and 0 < len(v) <= MAX_CURSOR_FIELD_CHARS for v in key.values()):
        raise InvalidCursor("the cursor is not one this service issued")
    if key["tenantId"] != tenant_id:
        raise InvalidCursor("the cursor belongs to another listing")
    try:
        datetime.fromisoformat(key["createdAt"])
    except ValueError as exc:
        raise InvalidCursor("the cursor is not one this service issued") from exc
    return key


@dataclass(frozen=True)
class JobPage:
    """One page of a tenant's jobs, newest first; `next_cursor` is set only when more may follow."""

    jobs: list[AnyJob]
    next_cursor: str | None


# A history read follows DynamoDB pages (its Limit counts items before the filter) for at most this many
# round trips; a sparse filter then returns a short page with a cursor rather than reading the whole partition.
HISTORY_MAX_READS = 10
HISTORY_FILTERED_PAGE = 100


def kind_of(target: StrEnum) -> JobKind:
    """The kind of job whose status `target` is."""
    return KIND_FOR_STATUS[type(target)]


class JobRepository(VersionedRepository[AnyJob]):
    """Reads and conditional writes of job records of every kind."""

    key_name = "jobId"

    def __init__(self, dynamodb: Any, table: str) -> None:
        super().__init__(dynamodb, table, GENERATION)

    # -- what the table holds -------------------------------------------------------------------------------
    def parse(self, item: dict[str, Any]) -> AnyJob:
        """A stored job item as the record class of its kind."""
        return parse_job(item)

    def record_classes(self, target: StrEnum | None = None) -> tuple[type[StoredRecord], ...]:
        """The class of `target`'s kind; without a target, every kind (a field is checked by the first that
        declares it: the shared fields are declared once, on their common base)."""
        if target is not None:
            return (JOB_CLASSES[kind_of(target)],)
        return tuple(JOB_CLASSES.values())

    def machine_for(self, target: StrEnum) -> StateMachine:
        """The state machine of `target`'s kind."""
        return MACHINE_FOR_KIND[kind_of(target)]

    @staticmethod
    def _running(kind: JobKind) -> StrEnum:
        running = RUNNING_FOR_KIND[kind]
        if running is None or kind not in QUEUE_FOR_KIND:
            raise ValueError(f"{kind.value} jobs are not claimed by workers")
        return running

    # -- reads ----------------------------------------------------------------------------------------------
    async def get_as(self, record_id: str, cls: type[JobT]) -> JobT | None:
        """A job of one kind (`GenerationJob`, `TrainingJob`, `PortraitJob`); None if absent or of another."""
        job = await self.get(record_id)
        return job if isinstance(job, cls) else None

    # -- writes ---------------------------------------------------------------------------------------------
    async def create(self, record: JobT) -> JobT:  # type: ignore[override]
        """Insert a new job in the status it carries (its kind's initial one by default); a kind that waits
        for workers is put in its queue partition. Raises RecordExists (JobExists) if the id is taken."""
        if record.queue is None and record.kind in QUEUE_FOR_KIND:
            record = record.model_copy(update={"queue": QUEUE_FOR_KIND[record.kind]})
        return await super().create(record)  # type: ignore[return-value]

    @overload
    async def advance(
        self,
        record_id: str,
        target: GenerationStatus,
        fields: dict[str, Any] | None = None,
        attempts: int = 5,
        *,
        only_from: StrEnum | None = None,
    ) -> Advance[GenerationJob]: ...
    @overload
    async def advance(
        self,
        record_id: str,
        target: TrainingStatus,
        fields: dict[str, Any] | None = None,
        attempts: int = 5,
        *,
        only_from: StrEnum | None = None,
    ) -> Advance[TrainingJob]: ...
    @overload
    async def advance(
        self,
        record_id: str,
        target: PortraitStatus,
        fields: dict[str, Any] | None = None,
        attempts: int = 5,
        *,
        only_from: StrEnum | None = None,
    ) -> Advance[PortraitJob]: ...
    async def advance(  # type: ignore[override]
        self,
        record_id: str,
        target: StrEnum,
        fields: dict[str, Any] | None = None,
        attempts: int = 5,
        *,
        only_from: StrEnum | None = None,
    ) -> Advance[Any]:
        """Move a job to `target` (a status of its kind: a job of another kind is REJECTED), with `fields`."""
        return await super().advance(record_id, target, fields, attempts, only_from=only_from)

    def fields_to_remove(self, target: StrEnum) -> tuple[str, ...]:
        """Leaving the queue drops `queue`, ending drops `inFlight`, so the sparse indexes hold only waiting
        and held jobs."""
        machine = self.machine_for(target)
        if target == machine.initial:
            return ()
        if machine.is_terminal(target):
            return (QUEUE_ATTRIBUTE, IN_FLIGHT_ATTRIBUTE)
        return (QUEUE_ATTRIBUTE,)

    def _waiting_query(self, kind: JobKind, created_before: str) -> dict[str, Any]:
        """Query arguments for the jobs of `kind` still waiting that were created before `created_before`."""
        return {
            "TableName": self.table,
            "IndexName": JOBS_QUEUE_INDEX,
            "KeyConditionExpression": "#queue = :q AND createdAt < :c",
            "FilterExpression": "#status = :queued",
            "ExpressionAttributeNames": {"#queue": QUEUE_ATTRIBUTE, "#status": "status"},
            "ExpressionAttributeValues": {
                ":q": serialize(QUEUE_FOR_KIND[kind]),
                ":c": serialize(created_before),
                ":queued": serialize(MACHINE_FOR_KIND[kind].initial.value),
            },
        }

    async def waiting_since_before(self, kind: JobKind, created_before: str) -> list[AnyJob]:
        """Jobs of `kind` still waiting that were created before `created_before` (ISO time)."""
        return [self.parse(i) for i in await query_all(self.dynamodb, **self._waiting_query(kind, created_before))]

    async def lease_lapsed(self, kind: JobKind, now_ts: float) -> list[AnyJob]:
        """Jobs of `kind` held by a worker whose lease ended before `now_ts` (epoch seconds)."""
        items = await query_all(
            self.dynamodb,
            TableName=self.table,
            IndexName=JOBS_IN_FLIGHT_INDEX,
            KeyConditionExpression="#flight = :q",
            FilterExpression="#status = :running AND leaseExpiresAt < :now",
            ExpressionAttributeNames={"#flight": IN_FLIGHT_ATTRIBUTE, "#status": "status"},
            ExpressionAttributeValues={
                ":q": serialize(QUEUE_FOR_KIND[kind]),
                ":running": serialize(self._running(kind).value),
                ":now": serialize(now_ts),
            },
        )
        return [self.parse(i) for i in items]

    async def count_queued_before(self, created_at: str, kind: JobKind = JobKind.TRAINING) -> int:
        """How many jobs of `kind` still wait that were created before `created_at` (all tenants)."""
        return await count_all_pages(self.dynamodb, **self._waiting_query(kind, created_at))

    @overload
    async def claim(
        self, job_id: str, worker_id: str, lease_seconds: int, *, kind: Literal[JobKind.GENERATION]
    ) -> GenerationJob | None: ...
    @overload
    async def claim(
        self, job_id: str, worker_id: str, lease_seconds: int, *, kind: Literal[JobKind.TRAINING]
    ) -> TrainingJob | None: ...
    async def claim(
        self, job_id: str, worker_id: str, lease_seconds: int, *, kind: JobKind
    ) -> GenerationJob | TrainingJob | None:
        """Take a queued job of `kind`, or a running one whose lease lapsed (or that this worker already
        holds); None if someone else holds it, or the job is of another kind. Portraits are not claimed."""
        running = self._running(kind)
        now = utcnow()
        sets = self._stored(
            {
                "status": running.value,
                IN_FLIGHT_ATTRIBUTE: QUEUE_FOR_KIND[kind],
                "leaseOwner": worker_id,
                "leaseExpiresAt": now.timestamp() + lease_seconds,
                "updatedAt": now.isoformat(),
            },
            running,
        )
        # The same worker may re-claim (a redelivery to the owner after a restart with the same id).
        # Only a job of `kind`: a generation item from before every writer set `kind` has none.
        of_kind = "(attribute_not_exists(#kind) OR #kind = :kind)" if kind is JobKind.GENERATION else "#kind = :kind"
        condition = (
            f"{of_kind} AND (#status = :queued OR "
            "(#status = :processing AND (leaseExpiresAt < :now OR leaseOwner = :me)))"
        )
        values = {
            ":kind": kind.value,
            ":queued": MACHINE_FOR_KIND[kind].initial.value,
            ":processing": running.value,
            ":now": now.timestamp(),
            ":me": worker_id,
            ":zero": 0,
            ":started": now.isoformat(),
        }
        try:
            claimed = await self._update(
                job_id,
                sets,
                condition,
                values,
                extra=", attempts = if_not_exists(attempts, :zero) + :one, "
                "startedAt = if_not_exists(startedAt, :started)",
                remove=(QUEUE_ATTRIBUTE,),
                names={"#kind": "kind"},
            )
        except StaleWrite:
            return None
        assert isinstance(claimed, GenerationJob | TrainingJob)
        return claimed

    async def renew_lease(self, job_id: str, worker_id: str, lease_seconds: int, *, kind: JobKind) -> bool:
        """Extend a held lease of a job of `kind`; False if the job is no longer this worker's."""
        try:
            await self._update(
                job_id,
                self._stored({"leaseExpiresAt": utcnow().timestamp() + lease_seconds}),
                "#status = :processing AND leaseOwner = :me",
                {":processing": self._running(kind).value, ":me": worker_id},
            )
        except StaleWrite:
            return False
        return True

    async def record_progress(self, job_id: str, progress: TrainingProgress) -> bool:
        """Store a training's progress snapshot if its `seq` is newer than the one recorded (reordered
        notifications lose)."""
        try:
            await self._update(
                job_id,
                self._stored({"progress": progress, "progressSeq": progress.seq}, TrainingStatus.RUNNING),
                "attribute_exists(jobId) AND (attribute_not_exists(progressSeq) OR progressSeq < :seq)",
                {":seq": progress.seq},
            )
        except StaleWrite:
            return False
        return True

    async def record_epoch(self, job_id: str, epoch: str, info: EpochRecord) -> bool:
        """Add (or overwrite, on a duplicate notification) one finished epoch; False if the job is unknown."""
        try:
            await self.dynamodb.update_item(
                TableName=self.table,
                Key=self._key(job_id),
                UpdateExpression="SET epochs.#e = :v, #version = #version + :one",
                ConditionExpression="attribute_exists(epochs)",
                ExpressionAttributeNames={"#e": epoch, "#version": "version"},
                ExpressionAttributeValues={
                    ":v": serialize(info.model_dump(mode="json", exclude_none=True)),
                    ":one": serialize(1),
                },
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    async def list_for_model(self, model_id: str, kind: JobKind) -> list[AnyJob]:
        """Every job of one kind for a model, newest first (callers check the tenant)."""
        items = await query_all(
            self.dynamodb,
            TableName=self.table,
            IndexName=JOBS_BY_MODEL_INDEX,
            KeyConditionExpression="modelId = :m",
            FilterExpression="#kind = :k",
            ExpressionAttributeNames={"#kind": "kind"},
            ExpressionAttributeValues={":m": serialize(model_id), ":k": serialize(JobKind(kind).value)},
            ScanIndexForward=False,
        )
        return [self.parse(i) for i in items]

    async def page_for_tenant(
        self,
        tenant_id: str,
        *,
        limit: int,
        cursor: str | None = None,
        kind: JobKind | None = None,
        predictions: bool | None = None,
        status: str | None = None,
    ) -> JobPage:
        """The tenant's live (not soft-deleted) jobs, newest first, `limit` at most, after `cursor` (from an
        earlier page; `InvalidCursor` if it is not one of this tenant's). Filters: `kind`; `predictions`
        (True: only the custom-models API's predictions, False: none of them, None: either); the stored
        `status`."""
        start = decode_cursor(cursor, tenant_id) if cursor is not None else None
        conditions = ["attribute_not_exists(deletedAt)"]
        names: dict[str, str] = {}
        values: dict[str, Any] = {":t": serialize(tenant_id)}
        if kind is not None:
            names["#kind"] = "kind"
            values[":kind"] = serialize(kind.value)
            # A generation item from before every writer set `kind` has none.
            legacy = kind is JobKind.GENERATION
            conditions.append("(attribute_not_exists(#kind) OR #kind = :kind)" if legacy else "#kind = :kind")
        if predictions is not None:
            conditions.append(f"attribute_{'exists' if predictions else 'not_exists'}(scaleConfigLabels)")
        if status is not None:
            names["#status"] = "status"
            values[":status"] = serialize(status)
            conditions.append("#status = :status")
        filtered = len(conditions) > 1
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": JOBS_BY_TENANT_INDEX,
            "KeyConditionExpression": "tenantId = :t",
            "FilterExpression": " AND ".join(conditions),
            "ExpressionAttributeValues": values,
            "ScanIndexForward": False,
            # One more than asked tells, without another read, whether more follow.
            "Limit": max(limit + 1, HISTORY_FILTERED_PAGE) if filtered else limit + 1,
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        if start is not None:
            kwargs["ExclusiveStartKey"] = {name: serialize(value) for name, value in start.items()}
        found: list[AnyJob] = []
        for _ in range(HISTORY_MAX_READS):
            response = await self.dynamodb.query(**kwargs)
            page = response.get("Items", [])
            for index, item in enumerate(page):
                found.append(self.parse(from_item(item)))
                if len(found) == limit:
                    more = index < len(page) - 1 or "LastEvaluatedKey" in response
                    last = found[-1]
                    position = {"jobId": last.jobId, "tenantId": last.tenantId, "createdAt": last.createdAt}
                    return JobPage(found, encode_cursor(position) if more else None)
            if "LastEvaluatedKey" not in response:
                return JobPage(found, None)
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        # Read enough for one request: where the reading stopped is the next page's start.
        return JobPage(found, encode_cursor(from_item(kwargs["ExclusiveStartKey"])))

    async def mark_published(self, job_id: str, status: StrEnum | str) -> None:
        """Record that the lifecycle event of `status` reached Kafka (so a redelivery need not resend it)."""
        await self.dynamodb.update_item(
            TableName=self.table,
            Key=self._key(job_id),
            UpdateExpression="ADD publishedEvents :s",
            ExpressionAttributeValues={":s": {"SS": [str(status)]}},
        )
