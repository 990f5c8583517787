"""Webhook rules without I/O: Standard Webhooks signatures (checked with the `standardwebhooks` package) and
the retry schedule on a fake clock."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from events.webhooks import RetryPolicy, Verdict, WebhookEvent, decide, delivery_id, parse_retry_after
from functions.webhooks.dispatch import signature_headers
from infra.repositories.webhooks import new_signing_secret

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
BODY = json.dumps({"type": "job.completed", "data": {"jobId": "job_1"}})


def test_a_signed_delivery_verifies_and_any_change_breaks_it() -> None:
    secret = new_signing_secret()
    assert secret.startswith("whsec_")
    now = datetime.now(UTC)
    headers = signature_headers("msg_job_1_completed", now, BODY, [secret])
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)
    tampered = [
        (BODY.replace("job_1", "job_2"), headers),
        (BODY, {**headers, "webhook-id": "msg_job_1_failed"}),
        (BODY, {**headers, "webhook-timestamp": str(int(now.timestamp()) + 1)}),
    ]
    for body, changed in tampered:
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(body, changed)
    with pytest.raises(WebhookVerificationError):
        Webhook(new_signing_secret()).verify(BODY, headers)


def test_an_old_timestamp_is_refused_even_with_a_valid_signature() -> None:
    secret = new_signing_secret()
    stale = signature_headers("msg_1", datetime.now(UTC) - timedelta(minutes=6), BODY, [secret])
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(BODY, stale)


def test_during_rotation_both_secrets_verify() -> None:
    old, new = new_signing_secret(), new_signing_secret()
    headers = signature_headers("msg_1", datetime.now(UTC), BODY, [new, old])
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(BODY, headers)


def test_delivery_ids_are_stable_per_job_and_event() -> None:
    assert delivery_id("job_1", WebhookEvent.COMPLETED) == delivery_id("job_1", WebhookEvent.COMPLETED)
    assert delivery_id("job_1", WebhookEvent.START) != delivery_id("job_1", WebhookEvent.COMPLETED)
    assert delivery_id("job_1", WebhookEvent.CHECKPOINT, "000001") != delivery_id(
        "job_1", WebhookEvent.CHECKPOINT, "000002"
    )


@pytest.mark.parametrize(
    ("status", "verdict"), [(200, Verdict.DELIVERED), (204, Verdict.DELIVERED), (410, Verdict.GONE)]
)
def test_success_and_gone_end_the_delivery(status: int, verdict: Verdict) -> None:
    assert decide(1, status, None, NOW).verdict is verdict


def test_the_schedule_on_a_fake_clock() -> None:
    """500, no answer, 429 with Retry-After, 500 ...: exponential with jitter, Retry-After honoured, capped."""
    policy = RetryPolicy(base=timedelta(seconds=10), cap=timedelta(minutes=5), max_attempts=6)
    rng = random.Random(1)
    clock = NOW
    waits = []
    for attempt, (status, retry_after) in enumerate(
        [(500, None), (None, None), (429, "120"), (503, None), (500, None)], start=1
    ):
        decision = decide(attempt, status, retry_after, clock, policy, rng)
        assert decision.verdict is Verdict.RETRY and decision.next_attempt_at is not None
        waits.append(decision.next_attempt_at - clock)
        clock = decision.next_attempt_at
    backoffs = [timedelta(seconds=10), timedelta(seconds=20), timedelta(seconds=40), timedelta(seconds=80)]
    for wait, backoff in zip(waits[:2] + waits[3:4], backoffs[:2] + backoffs[3:4], strict=True):
        assert backoff / 2 <= wait <= backoff  # jitter: between half and all of the backoff
    assert waits[2] >= timedelta(seconds=120)  # Retry-After beat the 20..40 s backoff
    assert waits[4] <= policy.cap
    assert decide(6, 500, None, clock, policy, rng).verdict is Verdict.GAVE_UP


def test_retry_after_as_a_date_and_its_limit() -> None:
    assert parse_retry_after("Sat, 21 Nov 2026 12:05:00 GMT", NOW) == timedelta(minutes=5)
    assert parse_retry_after("soon", NOW) is None
    far = decide(1, 429, str(30 * 24 * 3600), NOW)
    assert far.next_attempt_at is not None and far.next_attempt_at - NOW == RetryPolicy().max_retry_after
