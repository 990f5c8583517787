"""Quotas and rate limits per tenant: the limits in force (the deployment's defaults, each overridden by the
tenant's record), the checks against counts the adapters give, and the refusals, worded so a client knows
which limit it met, its value, and when to try again.

Every limit of 0 means "no limit". The counts are read, then compared, then acted on: two concurrent requests
may both pass a check that only one of them should (a soft limit, over by at most the requests in flight at
once). Storage is the exception: it is reserved by a conditional update (`TenantStore.add_storage`), so it is
never exceeded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from events.records.tenants import TenantQuotas, TenantRecord
from events.states import JobKind, TenantStatus, UploadStatus
from events.usecases.errors import Forbidden, QuotaExceeded
from events.usecases.ports import QuotaBackends

# How long a client should wait before asking again for a slot that frees itself: a queued generation of a
# small model takes seconds, a training minutes. Limits that never free themselves (images, bytes) are only
# freed by the client deleting something: an hour says "not by waiting".
GENERATION_SLOT_RETRY_S = 5
TRAINING_SLOT_RETRY_S = 60
NOT_BY_WAITING_RETRY_S = 3600


class Limit(StrEnum):
    """A tenant's limits, by the names of `TenantQuotas`' fields (what an operator overrides)."""

    ACTIVE_GENERATIONS = "activeGenerations"
    ACTIVE_TRAININGS = "activeTrainings"
    REQUESTS_PER_SECOND = "requestsPerSecond"
    TRAINING_IMAGES_PER_MODEL = "trainingImagesPerModel"
    STORAGE_BYTES = "storageBytes"


# The deployment setting that gives each limit's default, as an operator sets it.
SETTING_OF: dict[Limit, str] = {
    Limit.ACTIVE_GENERATIONS: "LF_QUOTA_ACTIVE_GENERATIONS",
    Limit.ACTIVE_TRAININGS: "LF_QUOTA_ACTIVE_TRAININGS",
    Limit.REQUESTS_PER_SECOND: "LF_QUOTA_REQUESTS_PER_SECOND",
    Limit.TRAINING_IMAGES_PER_MODEL: "LF_QUOTA_TRAINING_IMAGES_PER_MODEL",
    Limit.STORAGE_BYTES: "LF_QUOTA_STORAGE_BYTES",
}

ACTIVE_LIMIT_OF_KIND: dict[JobKind, Limit] = {
    JobKind.GENERATION: Limit.ACTIVE_GENERATIONS,
    JobKind.TRAINING: Limit.ACTIVE_TRAININGS,
}


class QuotaSettings(Protocol):
    """The deployment's default limits (`infra.settings.Settings`)."""

    @property
    def quota_active_generations(self) -> int: ...
    @property
    def quota_active_trainings(self) -> int: ...
    @property
    def quota_requests_per_second(self) -> float: ...
    @property
    def quota_training_images_per_model(self) -> int: ...
    @property
    def quota_storage_bytes(self) -> int: ...


@dataclass(frozen=True)
class Limits:
    """The limits in force for one tenant (0: no limit)."""

    active_generations: int
    active_trainings: int
    requests_per_second: float
    training_images_per_model: int
    storage_bytes: int

    def value(self, limit: Limit) -> float:
        """The value of one limit."""
        return {
            Limit.ACTIVE_GENERATIONS: self.active_generations,
            Limit.ACTIVE_TRAININGS: self.active_trainings,
            Limit.REQUESTS_PER_SECOND: self.requests_per_second,
            Limit.TRAINING_IMAGES_PER_MODEL: self.training_images_per_model,
            Limit.STORAGE_BYTES: self.storage_bytes,
        }[limit]


def effective_limits(settings: QuotaSettings, overrides: TenantQuotas | None = None) -> Limits:
    """The settings' defaults, each replaced by the tenant's override where it has one."""
    own = overrides or TenantQuotas()

    def pick(override: float | None, default: float) -> float:
        return default if override is None else override

    return Limits(
        active_generations=int(pick(own.activeGenerations, settings.quota_active_generations)),
        active_trainings=int(pick(own.activeTrainings, settings.quota_active_trainings)),
        requests_per_second=float(pick(own.requestsPerSecond, settings.quota_requests_per_second)),
        training_images_per_model=int(pick(own.trainingImagesPerModel, settings.quota_training_images_per_model)),
        storage_bytes=int(pick(own.storageBytes, settings.quota_storage_bytes)),
    )


def _shown(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def exceeded(
    limit: Limit, limits: Limits, current: float, what: str, *, code: str = "quota_exceeded", retry_after_s: int
) -> QuotaExceeded:
    """The refusal for being over `limit`: `what` says what is over it ("too many generations queued or
    running"); the message names the value and where it is set, the details carry what a client acts on."""
    value = limits.value(limit)
    return QuotaExceeded(
        code,
        f"{what}: the limit is {_shown(value)} ({SETTING_OF[limit]} or the tenant's {limit.value})",
        details={"quota": limit.value, "limit": value, "current": current},
        retry_after_s=max(1, retry_after_s),
    )


def check_active_jobs(limits: Limits, kind: JobKind, active: int) -> None:
    """Refuse one more job of `kind` when `active` jobs of it are already queued or running."""
    limit = ACTIVE_LIMIT_OF_KIND[kind]
    value = limits.value(limit)
    if value and active >= value:
        retry = GENERATION_SLOT_RETRY_S if kind is JobKind.GENERATION else TRAINING_SLOT_RETRY_S
        raise exceeded(limit, limits, active, f"too many {kind.value}s queued or running", retry_after_s=retry)


def check_training_images(limits: Limits, current: int, adding: int = 1) -> None:
    """Refuse `adding` more training images to a model that holds `current` (pending or ready)."""
    value = limits.training_images_per_model
    if value and current + adding > value:
        raise exceeded(
            Limit.TRAINING_IMAGES_PER_MODEL,
            limits,
            current,
            f"too many training images for this model ({current} held, {adding} more sent; delete some first)",
            code="training_images_quota_exceeded",
            retry_after_s=NOT_BY_WAITING_RETRY_S,
        )


def storage_exceeded(limits: Limits, stored: int, adding: int) -> QuotaExceeded:
    """The refusal of `adding` bytes to a tenant that has `stored` (the reservation already failed)."""
    return exceeded(
        Limit.STORAGE_BYTES,
        limits,
        stored,
        f"not enough storage left for {adding} more bytes of images (delete training images first)",
        code="storage_quota_exceeded",
        retry_after_s=NOT_BY_WAITING_RETRY_S,
    )


def rate_limited(limits: Limits, retry_after_s: int) -> QuotaExceeded:
    """The refusal of a request over its key's requests per second."""
    return exceeded(
        Limit.REQUESTS_PER_SECOND,
        limits,
        limits.requests_per_second,
        "too many requests with this API key",
        code="rate_limited",
        retry_after_s=retry_after_s,
    )


def refuse_suspended(tenant: TenantRecord | None) -> None:
    """`Forbidden` (403 `tenant_suspended`) for a suspended tenant."""
    if tenant is not None and tenant.status is TenantStatus.SUSPENDED:
        raise Forbidden(
            "tenant_suspended", f"tenant {tenant.tenantId!r} is suspended; its API keys are refused until reinstated"
        )


# -- the checks with the counts they need (over the ports) ---------------------------------------------------
async def limits_of(backends: QuotaBackends, tenant_id: str) -> Limits:
    """The limits in force for the tenant (its record through the per-process cache; most have none)."""
    tenant = await backends.tenants.get(tenant_id, cached=True)
    return effective_limits(backends.settings, tenant.quotas if tenant else None)


async def require_job_slot(backends: QuotaBackends, tenant_id: str, kind: JobKind) -> None:
    """Refuse a new job of `kind` when the tenant already has its limit queued or running. A soft limit:
    two concurrent requests may both see the last free slot."""
    limits = await limits_of(backends, tenant_id)
    if not limits.value(ACTIVE_LIMIT_OF_KIND[kind]):
        return
    try:
        check_active_jobs(limits, kind, await backends.job_counts.active(tenant_id, kind))
    except QuotaExceeded as refusal:
        # When the running jobs say how long they take (trainings do), the first to end frees a slot.
        soonest = await backends.job_counts.soonest_end_s(tenant_id, kind)
        if soonest is not None:
            refusal.retry_after_s = max(1, math.ceil(soonest))
        raise


async def require_image_room(backends: QuotaBackends, tenant_id: str, model_id: str, adding: int = 1) -> None:
    """Refuse `adding` more training images to the model over its limit (pending and ready images count;
    rejected ones hold nothing). Soft, as the job slots are."""
    limits = await limits_of(backends, tenant_id)
    if limits.training_images_per_model:
        items = await backends.training_data.list(model_id)
        held = sum(1 for item in items if item.status is not UploadStatus.REJECTED)
        check_training_images(limits, held, adding)


async def reserve_storage(backends: QuotaBackends, tenant_id: str, nbytes: int) -> None:
    """Count `nbytes` more against the tenant's storage before they are written; `QuotaExceeded` (nothing
    counted) when they do not fit."""
    limits = await limits_of(backends, tenant_id)
    if await backends.tenants.add_storage(tenant_id, nbytes, limit=limits.storage_bytes or None):
        return
    tenant = await backends.tenants.get(tenant_id)
    raise storage_exceeded(limits, tenant.storageBytes if tenant else 0, nbytes)


async def release_storage(backends: QuotaBackends, tenant_id: str, nbytes: int) -> None:
    """Give back `nbytes` of the tenant's storage (an image deleted, or a write that did not happen)."""
    if nbytes <= 0:
        return
    tenant = await backends.tenants.get(tenant_id)
    # Never below zero: images stored before their bytes were counted are freed uncounted.
    freed = min(nbytes, tenant.storageBytes if tenant else 0)
    if freed > 0:
        await backends.tenants.add_storage(tenant_id, -freed)
