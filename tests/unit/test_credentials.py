"""The one `Authorization` parser (Bearer, Basic) and the API-key cache's bounded staleness."""

from __future__ import annotations

import base64

import pytest

from events.records.api_keys import ApiKeyRecord
from infra.repositories.api_keys import ApiKeyCache, Credentials, InvalidCredentials, parse_authorization
from tests.support import FakeClock


def basic(user_pass: str) -> str:
    return "Basic " + base64.b64encode(user_pass.encode()).decode()


def key_of(tenant: str) -> ApiKeyRecord:
    """A stored key of `tenant`, as the repository caches it."""
    return ApiKeyRecord(keyHash=f"hash-{tenant}", keyId=f"key_{tenant}", tenantId=tenant, name="tests")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer lf_abc", Credentials("lf_abc")),
        ("bearer   lf_abc  ", Credentials("lf_abc")),
        # Seed 003: curl -u KEY:SECRET.
        (basic("lf_abc:lfs_secret"), Credentials("lf_abc", "lfs_secret")),
        # Only the first colon separates: a secret may hold colons.
        (basic("lf_abc:lfs:with:colons"), Credentials("lf_abc", "lfs:with:colons")),
        ("BASIC " + base64.b64encode(b"k:s").decode(), Credentials("k", "s")),
    ],
)
def test_accepted_forms(header: str, expected: Credentials) -> None:
    assert parse_authorization(header) == expected


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer",
        "Bearer    ",
        "Token lf_abc",
        "lf_abc",
        "Basic",
        "Basic not*base64",
        basic("lf_abc"),  # no secret
        basic("lf_abc:"),  # empty secret: Basic must prove the secret
        basic(":lfs_secret"),  # no key
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),  # not UTF-8
        "Bearer " + "x" * 257,
    ],
)
def test_refused_forms(header: str | None) -> None:
    with pytest.raises(InvalidCredentials):
        parse_authorization(header)


def test_a_cached_record_is_trusted_for_the_ttl_only() -> None:
    clock = FakeClock()
    cache = ApiKeyCache(5, clock)
    record = key_of("t")
    cache.put("h", record)
    clock.now += 4.9
    assert cache.get("h") == record
    clock.now += 0.1
    assert cache.get("h") is None  # read again from the table: a revocation shows


def test_ttl_zero_caches_nothing_and_forget_drops_at_once() -> None:
    clock = FakeClock()
    off = ApiKeyCache(0, clock)
    off.put("h", key_of("t"))
    assert off.get("h") is None
    on = ApiKeyCache(5, clock)
    on.put("h", key_of("t"))
    on.forget("h")
    assert on.get("h") is None


def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("infra.repositories.api_keys._CACHE_MAX_ENTRIES", 3)
    clock = FakeClock()
    cache = ApiKeyCache(5, clock)
    for name in "abcd":
        cache.put(name, key_of(name))
    assert cache.get("a") is None and all(cache.get(n) for n in "bcd")
