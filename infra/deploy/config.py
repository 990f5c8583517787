"""What shapes the synthesized template (chosen at synth time, by `lorafoundry deploy synth` flags), as opposed
to the values a deployment fills in (CloudFormation parameters: code location, images, instance types)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property

from infra.resources import Resources, resources_for
from infra.settings import Settings


class KafkaMode(StrEnum):
    """Where the brokers come from."""

    # Amazon MSK Serverless: IAM authentication (SASL/OAUTHBEARER), nothing to size.
    MSK_SERVERLESS = "msk-serverless"
    # Amazon MSK provisioned brokers: SASL/SCRAM, credentials in Secrets Manager.
    MSK_PROVISIONED = "msk-provisioned"
    # A cluster the operator already runs, reached by bootstrap servers: SASL/SCRAM (secret given by ARN).
    EXTERNAL = "external"


@dataclass(frozen=True)
class DeployConfig:
    """The synth-time choices of one deployment."""

    prefix: str = "lorafoundry"
    kafka: KafkaMode = KafkaMode.MSK_SERVERLESS
    # Whether GPU services may scale to no task when no work waits (cold start: an instance and the image).
    scale_to_zero: bool = True
    # Partitions per topic: bounds how many workers of one kind share the work.
    kafka_partitions: int = 12

    @property
    def kafka_replication_factor(self) -> int:
        """MSK keeps three copies; a bring-your-own cluster is assumed to have at least three brokers too."""
        return 3

    @cached_property
    def settings(self) -> Settings:
        """The service's settings that name every resource (the same names the bootstrap uses)."""
        return Settings(
            _env_file=None,  # type: ignore[call-arg]
            resource_prefix=self.prefix,
            kafka_partitions=self.kafka_partitions,
            kafka_replication_factor=self.kafka_replication_factor,
        )

    @cached_property
    def resources(self) -> Resources:
        """`infra.resources` for these settings: the one list the template and the bootstrap both follow."""
        return resources_for(self.settings)
