"""The declarative list of every resource the service needs; `infra.bootstrap` applies it idempotently.

The same list documents what an AWS deployment must create (see infra/aws/ templates in later work).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from events import topics
from infra.settings import Settings

# Markers the notification handler turns into status: only these keys need to reach SQS.
MARKER_PREFIXES = ("jobs/", "trainings/")
MARKER_SUFFIX = ".json"
# Raw presigned uploads: their notification runs the validation and normalization.
UPLOADS_PREFIX = "uploads/"
UPLOADS_SUFFIX = "/raw"
# Presigned LoRA files: their notification runs the adapter import.
ADAPTER_UPLOADS_SUFFIX = "/adapter.safetensors"


@dataclass(frozen=True)
class TableSpec:
    """A DynamoDB table with string keys, on-demand billing."""

    name: str
    hash_key: str
    range_key: str | None = None
    indexes: tuple[tuple[str, str, str], ...] = ()  # (index name, hash key, range key)
    ttl_attribute: str | None = None

    def create_kwargs(self) -> dict[str, Any]:
        """Arguments for DynamoDB CreateTable."""
        attributes = {self.hash_key} | ({self.range_key} if self.range_key else set())
        key_schema = [{"AttributeName": self.hash_key, "KeyType": "HASH"}]
        if self.range_key:
            key_schema.append({"AttributeName": self.range_key, "KeyType": "RANGE"})
        gsis = []
        for index_name, hash_key, range_key in self.indexes:
            attributes |= {hash_key, range_key}
            gsis.append(
                {
                    "IndexName": index_name,
                    "KeySchema": [
                        {"AttributeName": hash_key, "KeyType": "HASH"},
                        {"AttributeName": range_key, "KeyType": "RANGE"},
                    ],
                    "Projection": {"ProjectionType": "ALL"},
                }
            )
        kwargs: dict[str, Any] = {
            "TableName": self.name,
            "KeySchema": key_schema,
            "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in sorted(attributes)],
            "BillingMode": "PAY_PER_REQUEST",
        }
        if gsis:
            kwargs["GlobalSecondaryIndexes"] = gsis
        return kwargs


@dataclass(frozen=True)
class QueueSpec:
    """An SQS queue with an optional dead-letter queue."""

    name: str
    visibility_timeout: int
    dead_letter_name: str | None = None
    max_receive_count: int = 5


@dataclass(frozen=True)
class TopicSpec:
    """A Kafka topic."""

    name: str
    partitions: int
    replication_factor: int


@dataclass(frozen=True)
class NotificationSpec:
    """S3 ObjectCreated notifications of keys under `prefix` ending in `suffix`, sent to a queue."""

    id: str
    queue_name: str
    prefix: str
    suffix: str


@dataclass(frozen=True)
class Resources:
    """Everything the service needs, named for one Settings."""

    bucket: str
    tables: tuple[TableSpec, ...]
    queues: tuple[QueueSpec, ...]
    notifications: tuple[NotificationSpec, ...]
    topics: tuple[TopicSpec, ...] = field(default=())
    # (key prefix, days): S3 lifecycle rules that delete objects under the prefix after that many days.
    expirations: tuple[tuple[str, int], ...] = field(default=())


JOBS_BY_TENANT_INDEX = "byTenant"
JOBS_BY_MODEL_INDEX = "byModel"
JOBS_QUEUE_INDEX = "byQueue"
JOBS_IN_FLIGHT_INDEX = "byInFlight"
MODELS_BY_TENANT_INDEX = "byTenant"
DELIVERIES_DUE_INDEX = "byDue"


def resources_for(settings: Settings) -> Resources:
    """The resource list for one configuration."""
    return Resources(
        bucket=settings.bucket,
        tables=(
            TableSpec(
                name=settings.jobs_table,
                hash_key="jobId",
                indexes=(
                    (JOBS_BY_TENANT_INDEX, "tenantId", "createdAt"),
                    (JOBS_BY_MODEL_INDEX, "modelId", "createdAt"),
                    (JOBS_QUEUE_INDEX, "queue", "createdAt"),
                    (JOBS_IN_FLIGHT_INDEX, "inFlight", "createdAt"),
                ),
            ),
            TableSpec(name=settings.api_keys_table, hash_key="keyHash"),
            TableSpec(
                name=settings.models_table,
                hash_key="modelId",
                indexes=((MODELS_BY_TENANT_INDEX, "tenantId", "createdAt"),),
            ),
            TableSpec(name=settings.training_data_table, hash_key="modelId", range_key="dataId"),
            # One-time tokens (request signatures seen): a conditional put refuses a replay; TTL forgets them.
            TableSpec(name=settings.nonces_table, hash_key="nonce", ttl_attribute="expiresAt"),
            TableSpec(name=settings.uploads_table, hash_key="uploadId", ttl_attribute="expiresAt"),
            TableSpec(name=settings.idempotency_table, hash_key="scope", ttl_attribute="expiresAt"),
            TableSpec(name=settings.webhook_secrets_table, hash_key="tenantId"),
            TableSpec(name=settings.tenants_table, hash_key="tenantId"),
            TableSpec(name=settings.workers_table, hash_key="workerId", ttl_attribute="expiresAt"),
            TableSpec(name=settings.base_models_table, hash_key="name"),
            TableSpec(
                name=settings.webhook_deliveries_table,
                hash_key="jobId",
                range_key="deliveryId",
                indexes=((DELIVERIES_DUE_INDEX, "due", "nextAttemptAt"),),
            ),
        ),
        queues=(
            QueueSpec(
                name=settings.notifications_queue,
                visibility_timeout=15,
                dead_letter_name=f"{settings.notifications_queue}-dlq",
            ),
        ),
        notifications=(
            *(
                NotificationSpec(
                    id=f"markers-{prefix.strip('/')}",
                    queue_name=settings.notifications_queue,
                    prefix=prefix,
                    suffix=MARKER_SUFFIX,
                )
                for prefix in MARKER_PREFIXES
            ),
            NotificationSpec(
                id="uploads", queue_name=settings.notifications_queue, prefix=UPLOADS_PREFIX, suffix=UPLOADS_SUFFIX
            ),
            NotificationSpec(
                id="adapter-uploads",
                queue_name=settings.notifications_queue,
                prefix=UPLOADS_PREFIX,
                suffix=ADAPTER_UPLOADS_SUFFIX,
            ),
        ),
        expirations=((UPLOADS_PREFIX, max(1, -(-settings.upload_expiry_seconds // 86400))),),
        topics=tuple(
            TopicSpec(name, settings.kafka_partitions, settings.kafka_replication_factor) for name in topics.ALL_TOPICS
        ),
    )
