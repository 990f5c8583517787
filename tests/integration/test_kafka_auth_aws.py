"""SCRAM credentials read from Secrets Manager (the moto server, over HTTP) by `resolve_kafka_settings`.

GetBootstrapBrokers (the other half of resolving an MSK cluster) is not implemented by moto; the choice of the
bootstrap string is covered offline in tests/unit/test_kafka_auth.py.
"""

from __future__ import annotations

import json
import secrets

import pytest

from infra.aws import create_client
from infra.kafka import admin_kwargs
from infra.kafka_auth import KafkaAuthError, resolve_kafka_settings
from infra.settings import Settings


def _settings(moto_endpoint: str, **values: object) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        aws_endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # type: ignore[arg-type]
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_bootstrap_servers="b-1.example:9096",
        **values,  # type: ignore[arg-type]
    )


async def _secret(settings: Settings, value: str) -> str:
    async with create_client(settings, "secretsmanager") as client:
        created = await client.create_secret(Name=f"AmazonMSK_test-{secrets.token_hex(4)}", SecretString=value)
    return str(created["ARN"])


async def test_scram_credentials_come_from_the_secret(moto_endpoint: str) -> None:
    password = secrets.token_urlsafe(16)
    arn = await _secret(_settings(moto_endpoint), json.dumps({"username": "lorafoundry", "password": password}))
    settings = _settings(moto_endpoint, kafka_sasl_secret_arn=arn)

    resolved = await resolve_kafka_settings(settings)

    assert resolved.kafka_sasl_username == "lorafoundry"
    assert resolved.kafka_sasl_password is not None and resolved.kafka_sasl_password.get_secret_value() == password
    assert password not in repr(resolved)  # a SecretStr: logging the settings does not show it
    assert resolved.kafka_bootstrap_servers == "b-1.example:9096"  # an external cluster's servers are kept
    kwargs = admin_kwargs(resolved)
    assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("lorafoundry", password)
    # Resolved once: the copy names no secret any more, so resolving it again asks nothing.
    assert resolved.kafka_sasl_secret_arn is None and await resolve_kafka_settings(resolved) is resolved


async def test_a_malformed_secret_is_refused_without_showing_it(moto_endpoint: str) -> None:
    arn = await _secret(_settings(moto_endpoint), "not-json-hunter2")
    with pytest.raises(KafkaAuthError) as raised:
        await resolve_kafka_settings(_settings(moto_endpoint, kafka_sasl_secret_arn=arn))
    assert arn in str(raised.value) and "hunter2" not in str(raised.value)
