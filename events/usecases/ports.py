"""What the use cases need from the outside world, as Protocols: the adapters in `infra/` satisfy them
structurally (`infra.runtime.ServiceContext` satisfies `Backends`), and tests can hand in fakes.

Records are plain dicts for now (typed records are coming in `events/records/`).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel

from events.envelope import CloudEvent
from events.persistence import Advance

Record = dict[str, Any]


class JobStore(Protocol):
    """Jobs of every kind (generations, trainings, portraits), moved by their kind's state machine: the
    status enum passed to `advance` names it."""

    async def create(self, record: Record, status: StrEnum | None = None) -> Record:
        """Insert a new job; raises `RecordExists` if the id is taken."""
        ...

    async def get(self, record_id: str) -> Record | None:
        """The job, or None."""
        ...

    async def get_for_tenant(self, tenant_id: str, record_id: str) -> Record | None:
        """The job if it is the tenant's, else None."""
        ...

    async def advance(self, record_id: str, target: StrEnum, fields: dict[str, Any] | None = None) -> Advance[Record]:
        """Move the job to `target` if its state machine allows it."""
        ...

    async def update_fields(
        self,
        record_id: str,
        fields: dict[str, Any],
        *,
        condition: str | None = None,
        values: dict[str, Any] | None = None,
    ) -> Record:
        """Set fields without a status change; raises `StaleWrite` when `condition` fails."""
        ...

    async def mark_published(self, job_id: str, status: str) -> None:
        """Record that the lifecycle event of `status` was sent."""
        ...


class ModelStore(Protocol):
    """Models."""

    async def get(self, record_id: str) -> Record | None:
        """The model, or None."""
        ...

    async def get_live(self, tenant_id: str, model_id: str) -> Record | None:
        """The tenant's model unless deleted, else None."""
        ...

    async def advance(self, record_id: str, target: StrEnum, fields: dict[str, Any] | None = None) -> Advance[Record]:
        """Move the model to `target` if its state machine allows it."""
        ...

    async def soft_delete(self, model_id: str) -> bool:
        """Hide the model; False if it already was."""
        ...


class TrainingDataStore(Protocol):
    """Training images' records."""

    async def put(self, item: Record) -> Record:
        """Write (or replace) one image's record."""
        ...

    async def list(self, model_id: str) -> list[Record]:
        """Every image record of a model."""
        ...


class UploadStore(Protocol):
    """Upload records."""

    async def get(self, upload_id: str) -> Record | None:
        """The upload, or None."""
        ...


class ArtifactStore(Protocol):
    """The artifacts bucket."""

    async def put_bytes(self, key: str, data: bytes, content_type: str) -> None:
        """Write an object."""
        ...

    async def put_model(self, key: str, model: BaseModel) -> None:
        """Write a pydantic model as JSON."""
        ...

    async def get_bytes(self, key: str) -> bytes | None:
        """An object's bytes, or None."""
        ...


class EventPublisher(Protocol):
    """The broker; raises `PublishFailed` when an event is not acknowledged."""

    async def publish(self, topic: str, event: CloudEvent[Any], key: str | None = None) -> None:
        """Send one event (keyed by its subject unless `key` is given)."""
        ...


class BaseModelSpec(Protocol):
    """What the use cases read of a base model."""

    @property
    def name(self) -> str: ...
    @property
    def default_size(self) -> int: ...
    @property
    def default_steps(self) -> int: ...
    @property
    def default_guidance(self) -> float: ...
    @property
    def train_steps_per_second(self) -> float: ...


class SettingsValues(Protocol):
    """The settings the use cases read."""

    @property
    def default_base_model(self) -> str: ...


class NormalizedImage(Protocol):
    """An image already validated and re-encoded by the adapter (`infra.images`)."""

    @property
    def png(self) -> bytes: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...
    @property
    def sha256(self) -> str: ...
    @property
    def source_format(self) -> str: ...
    @property
    def source_bytes(self) -> int: ...


class Backends(Protocol):
    """Everything a use case may reach, named as on `infra.runtime.ServiceContext`."""

    @property
    def settings(self) -> SettingsValues: ...
    @property
    def jobs(self) -> JobStore: ...
    # MERGE: `trainings` and `portraits` go once `jobs` holds every kind of job.
    @property
    def trainings(self) -> JobStore: ...
    @property
    def portraits(self) -> JobStore: ...
    @property
    def models(self) -> ModelStore: ...
    @property
    def training_data(self) -> TrainingDataStore: ...
    @property
    def uploads(self) -> UploadStore: ...
    @property
    def store(self) -> ArtifactStore: ...
    @property
    def publisher(self) -> EventPublisher: ...
    @property
    def base_models(self) -> Mapping[str, BaseModelSpec]: ...
