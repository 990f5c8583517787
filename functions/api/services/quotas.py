"""Quotas and rate limits: placeholder, filled in by issue 15's work."""

from __future__ import annotations

from events.records.api_keys import ApiKeyRecord
from infra.runtime import ServiceContext


async def check_request_allowed(context: ServiceContext, key: ApiKeyRecord) -> None:
    """Refuse the request (429, or 403 for a suspended tenant) when the key's tenant may not make it now."""
