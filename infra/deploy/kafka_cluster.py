"""Kafka for the deployment: MSK (serverless or provisioned) or a bring-your-own cluster, how clients reach
and authenticate to it, and the IAM its clients need. (Helper A3 implements; contract below.)"""

from __future__ import annotations

from infra.deploy.cfn import Fragment, Json
from infra.deploy.config import DeployConfig


def kafka_fragment(config: DeployConfig) -> Fragment:
    """The cluster (or the parameters naming an external one), its credentials secret when SCRAM."""
    raise NotImplementedError


def kafka_client_environment(config: DeployConfig) -> dict[str, Json | str]:
    """The LF_KAFKA_* environment variables every function and worker gets to reach the brokers."""
    raise NotImplementedError


def kafka_client_statements(config: DeployConfig) -> list[Json]:
    """IAM policy statements a Kafka client needs (MSK IAM: kafka-cluster:*; SCRAM: read the secret)."""
    raise NotImplementedError


def kafka_event_source(config: DeployConfig, topic: str, group_id: str) -> Json:
    """The properties of an AWS::Lambda::EventSourceMapping that reads `topic` as consumer group `group_id`
    (MSK: EventSourceArn + AmazonManagedKafkaEventSourceConfig; external: SelfManagedEventSource,
    SourceAccessConfigurations with the SCRAM secret, subnets and security group)."""
    raise NotImplementedError
