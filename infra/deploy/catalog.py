"""Every Lambda function and GPU worker service the deployment runs, by what it is, and the logical ids the
template's modules share. One list: the template names these handlers, the Lambda package is checked by
importing them, and the docs describe them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FunctionSpec:
    """One Lambda function."""

    name: str  # the function's name after the prefix: "{prefix}-{name}"
    logical_id: str  # its CloudFormation logical id
    handler: str  # "module.attribute", importable from the Lambda package
    purpose: str
    memory_mb: int = 512
    timeout_s: int = 30


@dataclass(frozen=True)
class WorkerServiceSpec:
    """One ECS service of GPU workers."""

    name: str  # "{prefix}-{name}"
    logical_id: str
    module: str  # `python -m module` runs it
    purpose: str


API = FunctionSpec(
    "api",
    "ApiFunction",
    "functions.api.handler.handler",
    "the HTTP API (FastAPI under Mangum)",
    # Enough for a kohya download's conversion (LF_MAX_ADAPTER_EXPORT_CONVERT_BYTES, 128 MiB: about 5x its size
    # with the read and the upload, under 800 MB); raise both together.
    1024,
    29,
)
S3_EVENTS = FunctionSpec(
    "s3-events",
    "S3EventsFunction",
    "functions.s3_events.handler.handler",
    "S3 notifications through SQS: markers become statuses, raw uploads are validated, LoRA files imported",
    # A presigned LoRA file (LF_MAX_ADAPTER_UPLOAD_BYTES, 512 MB) is read whole and converted: about 5x its size.
    3008,
    120,
)
WEBHOOKS = FunctionSpec(
    "webhooks",
    "WebhooksFunction",
    "functions.webhooks.handler.handler",
    "lifecycle events become signed webhook deliveries; a schedule retries the due ones",
    512,
    60,
)
PORTRAITS = FunctionSpec(
    "portraits",
    "PortraitsFunction",
    "functions.portraits.handler.handler",
    "the headshot flow: a finished training queues its portraits",
    512,
    60,
)
RECONCILER = FunctionSpec(
    "reconciler",
    "ReconcilerFunction",
    "functions.reconciler.handler.handler",
    "republishes jobs stuck queued and jobs whose worker's lease lapsed",
    512,
    120,
)
LAG_METRICS = FunctionSpec(
    "lag-metrics",
    "LagMetricsFunction",
    "functions.lag_metrics.handler.handler",
    "publishes each worker group's consumer lag to CloudWatch, which the GPU services scale on",
    256,
    60,
)
BOOTSTRAP = FunctionSpec(
    "bootstrap",
    "BootstrapFunction",
    "functions.bootstrap.handler.handler",
    "creates the Kafka topics (a CloudFormation custom resource, on every deploy)",
    256,
    300,
)

FUNCTIONS: tuple[FunctionSpec, ...] = (API, S3_EVENTS, WEBHOOKS, PORTRAITS, RECONCILER, LAG_METRICS, BOOTSTRAP)

GENERATOR = WorkerServiceSpec("generator", "GeneratorService", "workers.generator", "generations on a GPU")
TRAINER = WorkerServiceSpec("trainer", "TrainerService", "workers.trainer", "LoRA trainings on a GPU")
WORKER_SERVICES: tuple[WorkerServiceSpec, ...] = (GENERATOR, TRAINER)

# Logical ids shared between the template's modules.
BUCKET = "ArtifactsBucket"
NOTIFICATIONS_QUEUE = "NotificationsQueue"
NOTIFICATIONS_DLQ = "NotificationsDeadLetterQueue"
VPC = "Vpc"
PRIVATE_SUBNETS = ("PrivateSubnetA", "PrivateSubnetB")
FUNCTIONS_SECURITY_GROUP = "FunctionsSecurityGroup"
WORKERS_SECURITY_GROUP = "WorkersSecurityGroup"
KAFKA_SECURITY_GROUP = "KafkaSecurityGroup"
KAFKA_CLUSTER = "KafkaCluster"
KAFKA_SECRET = "KafkaCredentials"
CODE_BUCKET_PARAMETER = "CodeBucket"
CODE_KEY_PARAMETER = "CodeKey"


def table_logical_id(table_name: str, prefix: str) -> str:
    """'lorafoundry-webhook-deliveries' -> 'WebhookDeliveriesTable'."""
    suffix = table_name.removeprefix(f"{prefix}-")
    return "".join(part.capitalize() for part in suffix.split("-")) + "Table"
