"""What the use cases need from the outside world, as Protocols: the adapters in `infra/` satisfy them
structurally (`infra.runtime.ServiceContext` satisfies `Backends`), and tests can hand in fakes.

Records are the typed records of `events/records/`; the method names and signatures are those of the
repositories in `infra/repositories/`, so a repository (or a fake mirroring it) fits without a wrapper.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Protocol, TypeVar, overload

from pydantic import BaseModel

from events.envelope import CloudEvent
from events.persistence import Advance
from events.records.jobs import GenerationJob, PortraitJob, TrainingJob
from events.records.models import ModelRecord
from events.records.training_data import TrainingImageRecord
from events.records.uploads import UploadRecord
from events.states import GenerationStatus, ModelStatus, PortraitStatus, TrainingStatus

AnyJob = GenerationJob | TrainingJob | PortraitJob
JobT = TypeVar("JobT", GenerationJob, TrainingJob, PortraitJob)


class JobStore(Protocol):
    """Jobs of every kind (generations, trainings, portraits) in one table, each moved by its kind's state
    machine: the status enum passed to `advance` names it (`infra.repositories.jobs.JobRepository`)."""

    async def create(self, record: JobT) -> JobT:
        """Insert a new job in the status it carries; raises `RecordExists` if the id is taken."""
        ...

    async def get(self, record_id: str) -> AnyJob | None:
        """The job (as the record class of its kind), or None."""
        ...

    async def get_as(self, record_id: str, cls: type[JobT]) -> JobT | None:
        """The job if it is of class `cls`; None if absent or of another kind."""
        ...

    async def get_for_tenant(self, tenant_id: str, record_id: str) -> AnyJob | None:
        """The job if it is the tenant's, else None."""
        ...

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
    async def advance(
        self,
        record_id: str,
        target: StrEnum,
        fields: dict[str, Any] | None = None,
        attempts: int = 5,
        *,
        only_from: StrEnum | None = None,
    ) -> Advance[Any]:
        """Move the job to `target` if its kind's state machine allows it (a job of another kind: REJECTED)."""
        ...

    async def update_fields(
        self,
        record_id: str,
        fields: Mapping[str, Any],
        *,
        expected_version: int | None = None,
        remove: list[str] | tuple[str, ...] = (),
        condition: str | None = None,
        values: dict[str, Any] | None = None,
    ) -> AnyJob:
        """Set (and remove) fields without a status change; raises `StaleWrite` when a condition fails."""
        ...

    async def mark_published(self, job_id: str, status: StrEnum | str) -> None:
        """Record that the lifecycle event of `status` was sent."""
        ...


class ModelStore(Protocol):
    """Models (`infra.repositories.models.ModelRepository`)."""

    async def get(self, record_id: str) -> ModelRecord | None:
        """The model, or None."""
        ...

    async def get_live(self, tenant_id: str, model_id: str) -> ModelRecord | None:
        """The tenant's model unless deleted, else None."""
        ...

    async def advance(
        self, record_id: str, target: ModelStatus, fields: Mapping[str, Any] | None = None, attempts: int = 5
    ) -> Advance[ModelRecord]:
        """Move the model to `target` if its state machine allows it."""
        ...

    async def soft_delete(self, model_id: str) -> bool:
        """Hide the model; False if it already was."""
        ...


class TrainingDataStore(Protocol):
    """Training images' records (`infra.repositories.training_data.TrainingDataRepository`)."""

    async def put(self, item: TrainingImageRecord) -> TrainingImageRecord:
        """Write (or replace, keeping its createdAt) one image's record."""
        ...

    async def list(self, model_id: str) -> list[TrainingImageRecord]:
        """Every image record of a model, oldest first."""
        ...

    async def set_description(self, model_id: str, data_id: str, description: str | None) -> TrainingImageRecord | None:
        """Set (None: remove) an image's caption in place; None when the image is gone."""
        ...


class UploadStore(Protocol):
    """Upload records (`infra.repositories.uploads.UploadRepository`)."""

    async def get(self, upload_id: str) -> UploadRecord | None:
        """The live upload, or None."""
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
    # --- issue 16: API (A) ---
    @property
    def family(self) -> str:
        """The family's Scenario-style name (`sd-1_5`, `sd-xl`, `flux.1`): which defaults a training takes."""
        ...


class SettingsValues(Protocol):
    """The settings the use cases read."""

    @property
    def default_base_model(self) -> str: ...
    # --- issue 16: API (A) ---
    @property
    def captioning_model(self) -> str | None:
        """The operator's captioning model (then trainings caption images without a description by default)."""
        ...


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


# --- issue 15: quotas ---
from events.records.tenants import TenantRecord  # noqa: E402
from events.states import JobKind  # noqa: E402


class TenantStore(Protocol):
    """Tenants (`infra.repositories.tenants.TenantRepository`): their quota overrides and stored bytes."""

    async def get(self, tenant_id: str, *, cached: bool = False) -> TenantRecord | None:
        """The tenant's record, or None (most tenants have none: the defaults apply)."""
        ...

    async def add_storage(self, tenant_id: str, delta: int, *, limit: int | None = None) -> bool:
        """Add `delta` stored bytes; with `limit`, only while the total stays within it (False: refused)."""
        ...


class ActiveJobCounter(Protocol):
    """How many jobs a tenant has waiting or held (`infra.repositories.job_counts.JobCountRepository`)."""

    async def active(self, tenant_id: str, kind: JobKind) -> int:
        """The tenant's jobs of `kind` queued or running (a portrait's own generations left out)."""
        ...

    async def soonest_end_s(self, tenant_id: str, kind: JobKind) -> float | None:
        """Seconds until the first of the tenant's running jobs of `kind` is expected to end; None if unknown."""
        ...


class QuotaBackends(Protocol):
    """What the quota checks reach, named as on `infra.runtime.ServiceContext`."""

    @property
    def settings(self) -> Any: ...
    @property
    def tenants(self) -> TenantStore: ...
    @property
    def job_counts(self) -> ActiveJobCounter: ...
    @property
    def training_data(self) -> TrainingDataStore: ...


class QuotaAwareBackends(Backends, QuotaBackends, Protocol):
    """Backends of a use case that stores what the quotas count (training images and their bytes)."""
