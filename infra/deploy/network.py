"""The VPC the functions, the brokers and the GPU workers share. (Helper A3 implements; contract below.)"""

from __future__ import annotations

from infra.deploy.cfn import Fragment, Json
from infra.deploy.config import DeployConfig


def network_fragment(config: DeployConfig) -> Fragment:
    """VPC, private subnets (two AZs) with a NAT route out, the security groups (functions, workers, Kafka),
    and the gateway endpoints (S3, DynamoDB) that keep bulk traffic off the NAT."""
    raise NotImplementedError


def private_subnet_ids() -> list[Json]:
    """Refs of the private subnets, for Lambda VpcConfig, ECS and MSK."""
    raise NotImplementedError
