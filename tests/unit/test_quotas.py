"""Quotas and rate limits, the pure part: the limits in force, the checks on counts, the refusals' words, and
how the API renders them (429 with Retry-After and what a client can act on)."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from events.records.tenants import TenantQuotas, TenantRecord
from events.states import JobKind, TenantStatus
from events.usecases.errors import Forbidden, QuotaExceeded
from events.usecases.quotas import (
    Limit,
    check_active_jobs,
    check_training_images,
    effective_limits,
    rate_limited,
    refuse_suspended,
    storage_exceeded,
)
from functions.api.errors import api_error_of
from infra.repositories.rate_limits import RateLeases, RateLimitRepository, rate_window
from infra.settings import Settings

SETTINGS = Settings(_env_file=None, quota_active_generations=3, quota_storage_bytes=1000)  # type: ignore[call-arg]


def test_the_defaults_apply_where_the_tenant_overrides_nothing() -> None:
    limits = effective_limits(SETTINGS, None)
    assert limits.active_generations == 3 and limits.storage_bytes == 1000
    assert limits.active_trainings == SETTINGS.quota_active_trainings
    assert limits.requests_per_second == SETTINGS.quota_requests_per_second
    assert effective_limits(SETTINGS, TenantQuotas()) == limits


def test_an_override_replaces_its_default_and_zero_is_no_limit() -> None:
    limits = effective_limits(SETTINGS, TenantQuotas(activeGenerations=0, requestsPerSecond=2.5, storageBytes=50))
    assert (limits.active_generations, limits.requests_per_second, limits.storage_bytes) == (0, 2.5, 50)
    assert limits.active_trainings == SETTINGS.quota_active_trainings  # not overridden
    check_active_jobs(limits, JobKind.GENERATION, 10_000)  # 0: never refused


def test_a_job_over_its_kinds_limit_is_refused_naming_the_limit() -> None:
    limits = effective_limits(SETTINGS, None)
    check_active_jobs(limits, JobKind.GENERATION, 2)
    with pytest.raises(QuotaExceeded) as caught:
        check_active_jobs(limits, JobKind.GENERATION, 3)
    error = caught.value
    assert error.code == "quota_exceeded"
    assert "generations queued or running" in error.message and "the limit is 3" in error.message
    assert "LF_QUOTA_ACTIVE_GENERATIONS" in error.message and "activeGenerations" in error.message
    assert error.details == {"quota": "activeGenerations", "limit": 3, "current": 3}
    assert error.retry_after_s >= 1
    with pytest.raises(QuotaExceeded, match="trainings queued or running: the limit is 1 "):
        check_active_jobs(effective_limits(SETTINGS, TenantQuotas(activeTrainings=1)), JobKind.TRAINING, 1)


def test_training_images_count_what_the_model_holds_and_what_is_sent() -> None:
    limits = effective_limits(SETTINGS, TenantQuotas(trainingImagesPerModel=3))
    check_training_images(limits, 1, 2)
    with pytest.raises(QuotaExceeded) as caught:
        check_training_images(limits, 1, 3)
    assert caught.value.code == "training_images_quota_exceeded"
    assert caught.value.details == {"quota": "trainingImagesPerModel", "limit": 3, "current": 1}


def test_storage_and_rate_refusals_carry_their_own_codes() -> None:
    limits = effective_limits(SETTINGS, TenantQuotas(requestsPerSecond=2))
    storage = storage_exceeded(limits, 900, 200)
    assert storage.code == "storage_quota_exceeded" and "the limit is 1000" in storage.message
    assert storage.details["current"] == 900
    rate = rate_limited(limits, 1)
    assert rate.code == "rate_limited" and rate.retry_after_s == 1
    assert "the limit is 2 (LF_QUOTA_REQUESTS_PER_SECOND" in rate.message
    assert rate.details["quota"] == Limit.REQUESTS_PER_SECOND.value


def test_the_api_answers_a_quota_refusal_with_429_and_retry_after() -> None:
    error = api_error_of(rate_limited(effective_limits(SETTINGS, None), 1))
    assert error.status == 429 and error.headers == {"Retry-After": "1"}
    assert error.code == "rate_limited" and error.extra["quota"] == "requestsPerSecond"


def test_a_suspended_tenant_is_forbidden() -> None:
    refuse_suspended(None)
    refuse_suspended(TenantRecord(tenantId="t1"))
    with pytest.raises(Forbidden) as caught:
        refuse_suspended(TenantRecord(tenantId="t1", status=TenantStatus.SUSPENDED))
    assert caught.value.code == "tenant_suspended"
    assert api_error_of(caught.value).status == 403


@pytest.mark.parametrize(
    ("per_second", "window"), [(100, (1, 100)), (2.5, (1, 2)), (1, (1, 1)), (0.5, (2, 1)), (0.2, (5, 1))]
)
def test_the_rate_window_allows_at_least_one_request(per_second: float, window: tuple[int, int]) -> None:
    assert rate_window(per_second) == window


class CounterTable:
    """Just enough of DynamoDB's `update_item` for the rate counter: `ADD hits :count` under `attribute_not_exists
    (hits) OR hits <= :room`, failing as DynamoDB does when the condition does not hold."""

    def __init__(self) -> None:
        self.hits: dict[str, int] = {}
        self.writes = 0

    async def update_item(self, **kwargs: object) -> None:
        self.writes += 1
        key = kwargs["Key"]["nonce"]["S"]  # type: ignore[index]
        values = kwargs["ExpressionAttributeValues"]
        count, room = int(values[":count"]["N"]), int(values[":room"]["N"])  # type: ignore[index]
        if key in self.hits and self.hits[key] > room:
            raise ClientError({"Error": {"Code": "ConditionalCheckFailedException"}}, "UpdateItem")
        self.hits[key] = self.hits.get(key, 0) + count


async def test_leases_admit_exactly_the_limit_across_processes_with_few_writes() -> None:
    table = CounterTable()
    now = [100.5]
    processes = [RateLimitRepository(table, "nonces", RateLeases(), clock=lambda: now[0]) for _ in range(3)]
    admitted = 0
    for index in range(150):
        admitted += (await processes[index % 3].hit("key_1", 100)).allowed
    assert admitted == 100  # never over the limit; here not under it either (the leases were all used)
    assert table.writes <= 16  # a write per lease of 10; two failed ones per process, then none
    refused = await processes[0].hit("key_1", 100)
    assert not refused.allowed and refused.retry_after_s == 1
    now[0] = 101.0  # the next window
    assert (await processes[1].hit("key_1", 100)).allowed


async def test_without_leases_each_request_is_one_write() -> None:
    table = CounterTable()
    limiter = RateLimitRepository(table, "nonces", clock=lambda: 7.0)
    assert [(await limiter.hit("key_1", 2)).allowed for _ in range(3)] == [True, True, False]
    assert table.writes == 3 and table.hits == {"rate:key_1:7": 2}
