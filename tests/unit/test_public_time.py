"""The one form of every time a client sees: UTC, milliseconds, `Z`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import TypeAdapter

from events.envelope import public_time
from events.webhooks import WebhookEvent, payload
from functions.api.schemas.common import ApiTime


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-03-10T12:00:00+00:00", "2024-03-10T12:00:00.000Z"),
        ("2024-03-10T12:00:00Z", "2024-03-10T12:00:00.000Z"),
        ("2023-02-03T11:19:41.579999+00:00", "2023-02-03T11:19:41.579Z"),  # truncated: never later than it was
        ("2024-03-10T12:00:00.123456Z", "2024-03-10T12:00:00.123Z"),
        ("2024-03-10T12:00:00", "2024-03-10T12:00:00.000Z"),  # stored without an offset: UTC
        (datetime(2024, 3, 10, 14, 0, tzinfo=timezone(timedelta(hours=2))), "2024-03-10T12:00:00.000Z"),
        (datetime(2024, 3, 10, 12, 0, 0, 5_000, tzinfo=UTC), "2024-03-10T12:00:00.005Z"),
    ],
)
def test_times_come_out_in_one_form(value, expected) -> None:
    assert public_time(value) == expected
    assert TypeAdapter(ApiTime).validate_python(value) == expected
    assert public_time(expected) == expected, "idempotent: a view may pass on another view's time"


def test_fixed_width_strings_sort_as_the_times_do() -> None:
    start = datetime(2024, 3, 10, 12, 0, 0, 999_000, tzinfo=UTC)
    later = [start + timedelta(milliseconds=n) for n in (0, 1, 1000, 60_000)]
    assert sorted(public_time(t) for t in reversed(later)) == [public_time(t) for t in later]


def test_webhook_bodies_use_the_same_form() -> None:
    body = payload(WebhookEvent.COMPLETED, "job_1", "generation", "completed", datetime(2024, 3, 10, 12, tzinfo=UTC))
    assert body["timestamp"] == "2024-03-10T12:00:00.000Z"
