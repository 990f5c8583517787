"""`lorafoundry keys create|revoke` against the moto server: the key printed once authenticates, as the tenant
it was issued for, until it is revoked by its id; only its hash is stored."""

from __future__ import annotations

import os
import subprocess
import sys

from infra.repositories.api_keys import ApiKeyRepository, hash_api_key


def _cli(settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LF_RESOURCE_PREFIX": settings.resource_prefix,
        "LF_AWS_ENDPOINT_URL": settings.aws_endpoint_url,
        "LF_AWS_REGION": settings.aws_region,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }
    return subprocess.run(
        [sys.executable, "-m", "infra.local.cli", "keys", *args], env=env, capture_output=True, text=True, timeout=60
    )


async def test_an_issued_key_authenticates_as_its_tenant_until_revoked_by_its_id(bootstrapped, context) -> None:
    created = _cli(bootstrapped, "create", "--tenant", "acme", "--label", "ci")
    assert created.returncode == 0, created.stderr
    lines = dict(line.split(": ", 1) for line in created.stdout.splitlines())
    key_id, raw_key, secret = lines["Key id"], lines["API key"], lines["Signing secret"]
    repository = ApiKeyRepository(context.clients.dynamodb, bootstrapped.api_keys_table)
    record = await repository.lookup(raw_key)
    assert record is not None and (record.tenantId, record.keyId, record.name) == ("acme", key_id, "ci")
    assert record.signingSecret == secret
    stored = await context.clients.dynamodb.get_item(
        TableName=bootstrapped.api_keys_table, Key={"keyHash": {"S": hash_api_key(raw_key)}}
    )
    assert raw_key not in str(stored["Item"])  # only the hash names it

    revoked = _cli(bootstrapped, "revoke", key_id)
    assert revoked.returncode == 0 and revoked.stdout.strip() == f"Revoked: {key_id}"
    assert await repository.lookup(raw_key) is None


async def test_revoking_an_unknown_id_fails_and_says_so(bootstrapped) -> None:
    done = _cli(bootstrapped, "revoke", "key_000000000000")
    assert done.returncode == 1 and "no key has the id key_000000000000" in done.stderr
