"""`lorafoundry keys create|revoke` against the moto server: the key printed once authenticates, as the tenant
it was issued for, until it is revoked; only its hash is stored."""

from __future__ import annotations

import os
import subprocess
import sys

from infra.key_commands import revoke_key
from infra.repositories.api_keys import ApiKeyRepository, hash_api_key


def _cli_env(settings) -> dict[str, str]:
    return {
        **os.environ,
        "LF_RESOURCE_PREFIX": settings.resource_prefix,
        "LF_AWS_ENDPOINT_URL": settings.aws_endpoint_url,
        "LF_AWS_REGION": settings.aws_region,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }


async def test_an_issued_key_authenticates_as_its_tenant_until_revoked(bootstrapped, context) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "infra.local.cli", "keys", "create", "--tenant", "acme", "--signed"],
        env=_cli_env(bootstrapped),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)
    raw_key = lines["api key"].strip()
    repository = ApiKeyRepository(context.clients.dynamodb, bootstrapped.api_keys_table)
    record = await repository.lookup(raw_key)
    assert record is not None and record.tenantId == "acme" and record.signingSecret == lines["signing secret"]
    stored = await context.clients.dynamodb.get_item(
        TableName=bootstrapped.api_keys_table, Key={"keyHash": {"S": hash_api_key(raw_key)}}
    )
    assert raw_key not in str(stored["Item"])  # only the hash names it

    await revoke_key(bootstrapped, raw_key)
    assert await repository.lookup(raw_key) is None
