"""Kafka authentication on AWS, offline: the clients' SASL arguments per mechanism, the MSK IAM token (signed by
AWS's signer from fake credentials), the bootstrap string picked from GetBootstrapBrokers, the SCRAM secret's
parsing, and the deployment's environment read back as Settings."""

from __future__ import annotations

import base64
import time
from urllib.parse import parse_qs, urlparse

import pytest
from aiokafka.abc import AbstractTokenProvider

from infra.deploy.config import DeployConfig, KafkaMode
from infra.deploy.kafka_cluster import kafka_client_environment
from infra.kafka import admin_kwargs, create_producer
from infra.kafka_auth import (
    KafkaAuthError,
    MskIamTokenProvider,
    parse_scram_secret,
    pick_bootstrap_brokers,
    resolve_kafka_settings,
    sasl_kwargs,
)
from infra.settings import Settings


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


def test_no_mechanism_no_sasl() -> None:
    assert sasl_kwargs(_settings()) == {}
    assert "sasl_mechanism" not in admin_kwargs(_settings())


async def test_iam_uses_a_token_provider_over_tls() -> None:
    settings = _settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="OAUTHBEARER", aws_region="eu-west-1")
    kwargs = admin_kwargs(settings)
    assert kwargs["sasl_mechanism"] == "OAUTHBEARER"
    provider = kwargs["sasl_oauth_token_provider"]
    assert isinstance(provider, AbstractTokenProvider) and provider.region == "eu-west-1"
    assert "sasl_plain_username" not in kwargs and "ssl_context" in kwargs
    # aiokafka itself accepts the combination (it checks the provider's type and the protocol).
    assert create_producer(settings) is not None


def test_scram_uses_username_and_password() -> None:
    settings = _settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc",
        kafka_sasl_password="pw-1",
    )
    assert sasl_kwargs(settings) == {
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "svc",
        "sasl_plain_password": "pw-1",
    }


async def test_iam_token_is_signed_by_the_msk_signer(monkeypatch: pytest.MonkeyPatch) -> None:
    # Fake static credentials: signing is local (no call to AWS), so the real signer runs offline.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    token = await MskIamTokenProvider("us-west-2").token()
    url = urlparse(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
    query = parse_qs(url.query)
    assert url.netloc == "kafka.us-west-2.amazonaws.com"
    assert query["Action"] == ["kafka-cluster:Connect"]
    assert query["X-Amz-Credential"][0].startswith("AKIAEXAMPLE/")
    assert "X-Amz-Signature" in query


async def test_token_is_reused_until_near_expiry() -> None:
    now_ms = time.time() * 1000
    issued: list[int] = []

    def generate(region: str) -> tuple[str, int]:
        issued.append(1)
        # The first token expires in 30 s (inside the refresh margin), the next ones in 15 minutes.
        lifetime_ms = 30_000 if len(issued) == 1 else 900_000
        return f"token-{len(issued)}", int(now_ms + lifetime_ms)

    provider = MskIamTokenProvider("us-east-1", generate)
    assert await provider.token() == "token-1"
    assert await provider.token() == "token-2"  # the first was too close to expiring
    assert await provider.token() == "token-2"  # reused
    assert len(issued) == 2


def test_bootstrap_string_by_mechanism() -> None:
    response = {
        "BootstrapBrokerStringSaslIam": "b-1.iam:9098,b-2.iam:9098",
        "BootstrapBrokerStringSaslScram": "b-1.scram:9096,b-2.scram:9096",
    }
    assert pick_bootstrap_brokers(response, "OAUTHBEARER") == "b-1.iam:9098,b-2.iam:9098"
    assert pick_bootstrap_brokers(response, "SCRAM-SHA-512") == "b-1.scram:9096,b-2.scram:9096"
    with pytest.raises(KafkaAuthError, match="no listener"):
        pick_bootstrap_brokers({"BootstrapBrokerStringSaslIam": "b-1:9098"}, "SCRAM-SHA-512")
    with pytest.raises(KafkaAuthError, match="PLAIN"):
        pick_bootstrap_brokers(response, "PLAIN")


def test_scram_secret_parsing_never_echoes_the_secret() -> None:
    username, password = parse_scram_secret('{"username": "svc", "password": "hunter2"}', "arn:secret")
    assert username == "svc" and password.get_secret_value() == "hunter2"
    for bad in ('{"username": "svc"}', "hunter2", '{"username": "", "password": "hunter2"}', "[]"):
        with pytest.raises(KafkaAuthError) as raised:
            parse_scram_secret(bad, "arn:secret")
        assert "hunter2" not in str(raised.value) and "arn:secret" in str(raised.value)


async def test_nothing_to_resolve_keeps_the_settings() -> None:
    settings = _settings(kafka_bootstrap_servers="127.0.0.1:9092")
    assert await resolve_kafka_settings(settings) is settings


@pytest.mark.parametrize("mode", list(KafkaMode))
def test_the_deployments_environment_reads_back_as_settings(mode: KafkaMode, monkeypatch: pytest.MonkeyPatch) -> None:
    environment = kafka_client_environment(DeployConfig(kafka=mode))
    for name, value in environment.items():
        # A Ref stands for what CloudFormation fills in: the name's own text stands in for it here.
        monkeypatch.setenv(name, value if isinstance(value, str) else f"resolved-{name}")
    settings = _settings()
    assert settings.kafka_security_protocol == "SASL_SSL"
    if mode is KafkaMode.MSK_SERVERLESS:
        assert settings.kafka_sasl_mechanism == "OAUTHBEARER"
        assert settings.kafka_cluster_arn == "resolved-LF_KAFKA_CLUSTER_ARN" and settings.kafka_sasl_secret_arn is None
    else:
        assert settings.kafka_sasl_mechanism == "SCRAM-SHA-512"
        assert settings.kafka_sasl_secret_arn == "resolved-LF_KAFKA_SASL_SECRET_ARN"
    if mode is KafkaMode.EXTERNAL:
        assert settings.kafka_bootstrap_servers == "resolved-LF_KAFKA_BOOTSTRAP_SERVERS"
        assert settings.kafka_cluster_arn is None
    assert settings.kafka_replication_factor == 3
