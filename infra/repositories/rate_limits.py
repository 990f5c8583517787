"""Requests per second of one API key, counted across every process and Lambda container: a fixed-window
counter per key in the nonces table (`rate:{keyId}:{windowStart}`, forgotten by TTL), taken by conditional
`ADD`s, so the limit holds however many API processes share it. Each process takes a small lease of the
window's requests at a time (`RateLeases`), so most requests cost no write at all."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from infra.repositories.dynamo import is_condition_failure, serialize, to_item

# Kept a little past its window: DynamoDB's TTL is lazy, and a late read of an old window changes nothing.
_WINDOW_TTL_GRACE_S = 60


def rate_window(requests_per_second: float) -> tuple[int, int]:
    """(window seconds, requests allowed in it) for a fixed-window counter: one second for a limit of one or
    more; for a slower one (0.2/s), the window that allows one request (5 s)."""
    if requests_per_second >= 1:
        return 1, int(requests_per_second)
    window = math.ceil(1 / requests_per_second)
    return window, max(1, int(requests_per_second * window))


@dataclass(frozen=True)
class RateDecision:
    """Whether one request may go on, and if not, in how many seconds its key's window ends."""

    allowed: bool
    retry_after_s: int = 0


# A process takes this fraction of a window's allowance from the shared counter at a time (at least one
# request): a write per request doubled a GET's latency on moto; a lease of a tenth costs a write per ten.
LEASE_FRACTION = 10
_MAX_LEASED_KEYS = 10_000


def lease_size(allowed: int) -> int:
    """How many of a window's `allowed` requests one process takes from the shared counter in one write."""
    return max(1, allowed // LEASE_FRACTION)


class RateLeases:
    """This process's leased requests of each key's current window, admitted without asking DynamoDB, and the
    windows it found full (a window's counter only grows, so they stay full: refused without a write either).

    What one process leased and did not use is lost when the window ends, so the limit is never exceeded but
    may be met early, by at most (lease size - 1) requests per process that holds a lease."""

    def __init__(self) -> None:
        self._windows: dict[str, tuple[int, int]] = {}  # key id -> (window start, requests left; -1: full)

    def _left(self, key_id: str, window_start: int) -> int:
        start, left = self._windows.get(key_id, (window_start, 0))
        return left if start == window_start else 0

    def take(self, key_id: str, window_start: int) -> bool:
        """Use one leased request of the key's window, if this process holds one."""
        left = self._left(key_id, window_start)
        if left <= 0:
            return False
        self._windows[key_id] = (window_start, left - 1)
        return True

    def is_full(self, key_id: str, window_start: int) -> bool:
        """Whether this process already found the key's window full."""
        return self._left(key_id, window_start) < 0

    def _set(self, key_id: str, window_start: int, left: int) -> None:
        if len(self._windows) >= _MAX_LEASED_KEYS:
            self._windows.clear()
        self._windows[key_id] = (window_start, left)

    def keep(self, key_id: str, window_start: int, count: int) -> None:
        """Hold `count` more leased requests of the key's window (an older window's are dropped)."""
        self._set(key_id, window_start, max(0, self._left(key_id, window_start)) + count)

    def mark_full(self, key_id: str, window_start: int) -> None:
        """Remember that the key's window has no request left."""
        self._set(key_id, window_start, -1)


class RateLimitRepository:
    """Fixed-window request counters by API key, with this process's leases (`leases`; None: one write per
    request, exact)."""

    def __init__(
        self, dynamodb: Any, table: str, leases: RateLeases | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.dynamodb = dynamodb
        self.table = table
        self.leases = leases
        self.clock = clock

    async def _take(self, key_id: str, start: int, window: int, count: int, allowed: int) -> bool:
        """Add `count` to the window's counter if they all fit under `allowed`."""
        try:
            await self.dynamodb.update_item(
                TableName=self.table,
                Key=to_item({"nonce": f"rate:{key_id}:{start}"}),
                UpdateExpression="ADD hits :count SET expiresAt = if_not_exists(expiresAt, :expires)",
                ConditionExpression="attribute_not_exists(hits) OR hits <= :room",
                ExpressionAttributeValues={
                    ":count": serialize(count),
                    ":room": serialize(allowed - count),
                    ":expires": serialize(start + window + _WINDOW_TTL_GRACE_S),
                },
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                return False
            raise
        return True

    async def hit(self, key_id: str, requests_per_second: float) -> RateDecision:
        """Admit one request of the key in the current window: from this process's lease, else by taking a
        new lease (or, when less than a lease is left, one request) from the shared counter; refused, with the
        seconds until the window ends, when the window is full."""
        window, allowed = rate_window(requests_per_second)
        now = self.clock()
        start = int(now // window) * window
        retry_after_s = max(1, math.ceil(start + window - now))
        if self.leases is not None:
            if self.leases.take(key_id, start):
                return RateDecision(True)
            if self.leases.is_full(key_id, start):
                return RateDecision(False, retry_after_s)
        size = lease_size(allowed) if self.leases is not None else 1
        for count in (size, 1) if size > 1 else (1,):
            if await self._take(key_id, start, window, count, allowed):
                if self.leases is not None and count > 1:
                    self.leases.keep(key_id, start, count - 1)
                return RateDecision(True)
        if self.leases is not None:
            self.leases.mark_full(key_id, start)
        return RateDecision(False, retry_after_s)
