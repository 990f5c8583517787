"""How Kafka clients authenticate and find the brokers on AWS.

- MSK IAM: SASL/OAUTHBEARER with a token signed by AWS's MSK IAM signer from the process's own credentials (the
  task or function role);
- SASL/SCRAM: username and password from a Secrets Manager secret (LF_KAFKA_SASL_SECRET_ARN), or given directly
  (LF_KAFKA_SASL_USERNAME / LF_KAFKA_SASL_PASSWORD);
- an MSK cluster named by ARN (LF_KAFKA_CLUSTER_ARN): CloudFormation cannot give its bootstrap brokers, so they are
  asked of the `kafka` API.

The client factories in `infra.kafka` are sync, so what needs AWS is resolved once per process, before any client
is built, by `resolve_kafka_settings`. Without an ARN nothing is resolved: the embedded stack is unchanged.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

from aiobotocore.session import get_session
from aiokafka.abc import AbstractTokenProvider
from pydantic import SecretStr

from infra.aws import create_client
from infra.settings import Settings

IAM_MECHANISM = "OAUTHBEARER"
SCRAM_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")
# GetBootstrapBrokers' answer, by the mechanism the clients use.
_BROKER_STRINGS = {
    IAM_MECHANISM: "BootstrapBrokerStringSaslIam",
    "SCRAM-SHA-512": "BootstrapBrokerStringSaslScram",
    "SCRAM-SHA-256": "BootstrapBrokerStringSaslScram",
}
# MSK IAM tokens last 15 minutes; a new one is signed this long before the old one expires.
_TOKEN_REFRESH_MARGIN_S = 60.0

TokenGenerator = Callable[[str], tuple[str, int]]


class KafkaAuthError(RuntimeError):
    """The Kafka settings cannot be resolved (no listener for the mechanism, a malformed secret)."""


def _sign_msk_token(region: str) -> tuple[str, int]:
    from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

    token, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region)
    return token, int(expiry_ms)


class MskIamTokenProvider(AbstractTokenProvider):
    """aiokafka's OAUTHBEARER token callback for MSK IAM: a token signed by AWS's MSK IAM signer, reused until
    shortly before it expires (aiokafka asks on every connection)."""

    def __init__(self, region: str, generate: TokenGenerator = _sign_msk_token) -> None:
        self.region = region
        self._generate = generate
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def token(self) -> str:
        """A valid token; signing is sync (it reads credentials, which may mean an HTTP call), so off the loop."""
        async with self._lock:
            if self._token is None or time.time() >= self._expires_at - _TOKEN_REFRESH_MARGIN_S:
                token, expiry_ms = await asyncio.to_thread(self._generate, self.region)
                self._token, self._expires_at = token, expiry_ms / 1000
            return self._token


def sasl_kwargs(settings: Settings) -> dict[str, Any]:
    """The SASL arguments of every aiokafka client for these settings (none without a mechanism)."""
    mechanism = settings.kafka_sasl_mechanism
    if not mechanism:
        return {}
    if mechanism == IAM_MECHANISM:
        return {"sasl_mechanism": mechanism, "sasl_oauth_token_provider": MskIamTokenProvider(settings.aws_region)}
    kwargs: dict[str, Any] = {"sasl_mechanism": mechanism, "sasl_plain_username": settings.kafka_sasl_username}
    if settings.kafka_sasl_password:
        kwargs["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    return kwargs


def pick_bootstrap_brokers(response: dict[str, Any], mechanism: str | None) -> str:
    """The bootstrap string of GetBootstrapBrokers' answer that serves `mechanism`."""
    field = _BROKER_STRINGS.get(mechanism or "")
    if field is None:
        raise KafkaAuthError(f"an MSK cluster is reached with SASL/IAM or SASL/SCRAM, not {mechanism!r}")
    servers = response.get(field)
    if not servers:
        raise KafkaAuthError(f"the MSK cluster has no listener for {mechanism} ({field} is empty)")
    return str(servers)


def parse_scram_secret(secret_string: str, secret_arn: str) -> tuple[str, SecretStr]:
    """Username and password of a SCRAM secret, JSON {"username": ..., "password": ...} (as MSK requires).
    Errors name the secret, never its content."""
    try:
        value = json.loads(secret_string)
        username, password = value["username"], value["password"]
    except (ValueError, TypeError, KeyError):
        raise KafkaAuthError(f"secret {secret_arn} is not JSON with 'username' and 'password'") from None
    if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
        raise KafkaAuthError(f"secret {secret_arn}: 'username' and 'password' must be non-empty strings")
    return username, SecretStr(password)


async def resolve_kafka_settings(settings: Settings) -> Settings:
    """A copy of `settings` with the brokers (from LF_KAFKA_CLUSTER_ARN) and the SCRAM credentials (from
    LF_KAFKA_SASL_SECRET_ARN) filled in and those ARNs cleared, so resolving again asks nothing; `settings`
    itself when neither is set."""
    cluster_arn, secret_arn = settings.kafka_cluster_arn, settings.kafka_sasl_secret_arn
    if not cluster_arn and not secret_arn:
        return settings
    updates: dict[str, Any] = {"kafka_cluster_arn": None, "kafka_sasl_secret_arn": None}
    session = get_session()
    if cluster_arn:
        async with create_client(settings, "kafka", session) as kafka:
            response = await kafka.get_bootstrap_brokers(ClusterArn=cluster_arn)
        updates["kafka_bootstrap_servers"] = pick_bootstrap_brokers(response, settings.kafka_sasl_mechanism)
    if secret_arn:
        async with create_client(settings, "secretsmanager", session) as secrets:
            secret = await secrets.get_secret_value(SecretId=secret_arn)
        username, password = parse_scram_secret(secret.get("SecretString") or "", secret_arn)
        updates["kafka_sasl_username"], updates["kafka_sasl_password"] = username, password
    return settings.model_copy(update=updates)
