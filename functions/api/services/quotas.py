"""Quotas and rate limits of the API's callers: what every authenticated request passes (its tenant not
suspended, its key under its requests per second), and the checks the services run before queueing a job or
storing an image (`events.usecases.quotas`)."""

from __future__ import annotations

from events.records.api_keys import ApiKeyRecord
from events.usecases.quotas import effective_limits, rate_limited, refuse_suspended
from infra.runtime import ServiceContext


async def check_request_allowed(context: ServiceContext, key: ApiKeyRecord) -> None:
    """Refuse the request (429, or 403 for a suspended tenant) when the key's tenant may not make it now.

    The tenant's record is read through the per-process cache (a suspension takes effect within the cache's
    seconds); the rate limit is counted across every API process, each taking a share of a key's second at a
    time in one conditional write (infra/repositories/rate_limits.py), so most requests cost no write at all."""
    tenant = await context.tenants.get(key.tenantId, cached=True)
    refuse_suspended(tenant)
    limits = effective_limits(context.settings, tenant.quotas if tenant else None)
    if limits.requests_per_second:
        decision = await context.rate_limits.hit(key.keyId, limits.requests_per_second)
        if not decision.allowed:
            raise rate_limited(limits, decision.retry_after_s)
