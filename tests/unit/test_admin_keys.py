"""The pure parts of the operator's key and tenant handling: when a stored key may authenticate (revoked,
rotated out past its grace), the grace's bounds, the CLI's quota options and tables, the limits a tenant shows."""

from __future__ import annotations

import pytest

from events.records.api_keys import ApiKeyRecord
from events.records.tenants import TenantQuotas
from events.states import ApiKeyStatus
from functions.api.services.admin import effective_quotas, key_out
from infra.admin_commands import format_table, key_rows, parse_quotas
from infra.repositories.api_keys import MAX_ROTATION_GRACE_SECONDS, is_usable, rotation_expiry
from infra.settings import Settings

NOW = 1_800_000_000.0


def _key(**fields: object) -> ApiKeyRecord:
    base = {"keyHash": "ab" * 32, "keyId": "key_abababababab", "tenantId": "acme", "name": "ci"}
    return ApiKeyRecord.model_validate({**base, **fields})


@pytest.mark.parametrize(
    ("fields", "usable"),
    [
        ({}, True),
        ({"status": ApiKeyStatus.REVOKED}, False),
        ({"expiresAt": NOW + 1}, True),  # rotated out, within its grace
        ({"expiresAt": NOW}, False),  # the grace ends at expiresAt itself
        ({"expiresAt": NOW - 1, "rotatedTo": "key_cdcdcdcdcdcd"}, False),
        ({"status": ApiKeyStatus.REVOKED, "expiresAt": NOW + 100}, False),
    ],
)
def test_a_key_is_usable_while_active_and_before_its_expiry(fields, usable) -> None:
    assert is_usable(_key(**fields), NOW) is usable


def test_the_grace_is_from_now_and_bounded() -> None:
    assert rotation_expiry(NOW, 0) == NOW
    assert rotation_expiry(NOW, 3600) == NOW + 3600
    for bad in (-1, MAX_ROTATION_GRACE_SECONDS + 1):
        with pytest.raises(ValueError, match="grace period"):
            rotation_expiry(NOW, bad)


def test_quota_options_are_typed_and_bad_ones_named() -> None:
    assert parse_quotas(["activeGenerations=5", "requestsPerSecond=2.5"]) == {
        "activeGenerations": 5,
        "requestsPerSecond": 2.5,
    }
    for bad, said in (("nope=1", "NAME one of"), ("activeGenerations", "NAME=VALUE"), ("storageBytes=lots", "lots")):
        with pytest.raises(ValueError, match=said):
            parse_quotas([bad])


def test_a_key_listing_shows_neither_value_nor_secret() -> None:
    record = _key(signingSecret="lfs_very_secret", expiresAt=NOW)
    shown = key_out(record).model_dump()
    assert "lfs_very_secret" not in str(shown) and record.keyHash not in str(shown)
    table = format_table(key_rows([key_out(record).model_dump(mode="json")]), ("A", "B", "C", "D", "E", "F", "G"))
    assert "key_abababababab" in table and "lfs_very_secret" not in table and "2027-01-15T08:00:00+00:00" in table


def test_a_tenant_shows_its_overrides_over_the_defaults() -> None:
    settings = Settings(_env_file=None, quota_active_generations=7, quota_storage_bytes=0)  # type: ignore[call-arg]
    limits = effective_quotas(settings, TenantQuotas(activeGenerations=2, requestsPerSecond=0))
    assert (limits.activeGenerations, limits.requestsPerSecond, limits.storageBytes) == (2, 0.0, 0)
    assert limits.activeTrainings == settings.quota_active_trainings
