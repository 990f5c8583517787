"""The template's Lambda functions and what triggers them: one function per `catalog.FUNCTIONS` entry (its own
log group and its own least-privilege role), the HTTP API in front of the API function, the SQS source of the
S3-events function, the Kafka sources of the lifecycle functions, the schedules, and the custom resource that
makes the Kafka topics on every deploy.

What each role grants is read from the code (`GRANTS`): the tables, bucket prefixes and queues a function's code
path reaches through `infra.runtime.ServiceContext` and `infra.storage.ArtifactStore`, with only the calls it
makes. A new repository call in a function's code path needs its line here, or it fails with AccessDenied on AWS.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from events.topics import JOB_LIFECYCLE
from infra.consumer_lag import NAMESPACE as LAG_NAMESPACE
from infra.deploy import catalog
from infra.deploy.catalog import FunctionSpec
from infra.deploy.cfn import REGION, Fragment, Json, get_att, join, ref, sub
from infra.deploy.config import DeployConfig
from infra.deploy.iam import (
    LAMBDA_VPC_ACCESS,
    add_role,
    bucket_arn,
    bucket_keys_arn,
    queue_arn,
    statement,
    table_arns,
)
from infra.deploy.kafka_cluster import kafka_client_environment, kafka_client_statements, kafka_event_source
from infra.deploy.network import private_subnet_ids, security_group_id
from infra.settings import Settings

RUNTIME = "python3.12"  # Amazon Linux 2023 (glibc 2.34): Pillow's current wheels need it
ARCHITECTURE = "x86_64"
LOG_RETENTION_DAYS = 30
# Logs are kept LOG_RETENTION_DAYS while the stack lives and go with it: they hold no user data.
LOGS_GO_WITH_THE_STACK = {"DeletionPolicy": "Delete", "UpdateReplacePolicy": "Delete"}

# --- What each function's code reaches -------------------------------------------------------------------------

GET, QUERY, PUT, UPDATE, DELETE = (
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
)
# Operator calls only (listing tenants, keys, live workers; `lorafoundry status` counting jobs), and the readiness
# probe's and status' DescribeTable.
SCAN, DESCRIBE = "dynamodb:Scan", "dynamodb:DescribeTable"
GET_OBJECT, PUT_OBJECT, DELETE_OBJECT = "s3:GetObject", "s3:PutObject", "s3:DeleteObject"


@dataclass(frozen=True)
class Grants:
    """What one function may touch. `tables`: a Settings property naming a table -> the DynamoDB calls made on
    it (Query covers its indexes too). `objects`: key patterns of the bucket -> the S3 calls made on them.
    `list_bucket`: S3 answers a GetObject of a missing key with AccessDenied instead of NoSuchKey unless the
    caller may list the bucket, and the code reads "absent" as None (`ArtifactStore.get_bytes`); the API's
    readiness probe is a HeadBucket, which is ListBucket too."""

    tables: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    objects: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    list_bucket: bool = False
    consumes_notifications: bool = False  # the SQS event source polls with the function's role
    consumes_kafka: bool = False  # a Kafka event source in the VPC: it looks the network up with the role
    puts_lag_metric: bool = False
    reads_admin_token: bool = False  # the operator API's credential, from its secret at the first request


GRANTS: dict[str, Grants] = {
    # Routes and the use cases they call (functions/api/services, events/usecases): records of every kind,
    # API keys looked up (and, by the operator API, issued, listed, revoked, rotated), tenants read per request
    # and their stored bytes counted, nonces used once; images written as job inputs, uploads and training data,
    # read (and presigned for GET) everywhere the API shows them, deleted with a training image.
    catalog.API.name: Grants(
        tables={
            "jobs_table": (GET, QUERY, PUT, UPDATE, SCAN, DESCRIBE),
            "api_keys_table": (GET, PUT, UPDATE, DELETE, SCAN),
            "models_table": (GET, QUERY, PUT, UPDATE),
            "training_data_table": (GET, QUERY, PUT, DELETE),
            # Signatures used once (PUT), and the per-key request windows (UPDATE: a conditional ADD).
            "nonces_table": (PUT, UPDATE),
            "tenants_table": (GET, PUT, UPDATE, SCAN),
            "workers_table": (SCAN,),
            # Base models an operator registers at run time (the operator API), and every request's registry read.
            "base_models_table": (GET, PUT, DELETE, SCAN),
            "uploads_table": (GET, PUT, UPDATE),
            "idempotency_table": (GET, PUT, DELETE),
            "webhook_secrets_table": (GET, PUT),
            "webhook_deliveries_table": (GET, QUERY, UPDATE),
        },
        objects={
            "jobs/*": (GET_OBJECT,),
            "jobs/*/inputs/*": (PUT_OBJECT,),
            "trainings/*": (GET_OBJECT,),
            # A trained adapter's kohya download, made on request beside it (final or an epoch's: IAM's `*`
            # spans `/`, so this one pattern covers `checkpoints/{epoch}/` too); the trainer's own files stay
            # read-only here.
            "trainings/*/adapter.kohya.safetensors": (PUT_OBJECT,),
            "models/*": (GET_OBJECT,),
            "models/*/data/*": (PUT_OBJECT, DELETE_OBJECT),
            # Imported LoRA files: written converted, the one an import replaces deleted (its kohya download
            # with it, made beside it on request).
            "models/*/adapters/*": (PUT_OBJECT, DELETE_OBJECT),
            "uploads/*": (GET_OBJECT, PUT_OBJECT, DELETE_OBJECT),
        },
        list_bucket=True,
        reads_admin_token=True,
    ),
    # functions/s3_events: markers become statuses (jobs, models settled), raw uploads are validated into
    # uploads or training images, then the raw bytes are deleted.
    catalog.S3_EVENTS.name: Grants(
        tables={
            "jobs_table": (GET, UPDATE),
            "models_table": (GET, UPDATE),
            # UPDATE: a training's automatic captions recorded on its images (captions.json).
            "training_data_table": (GET, QUERY, PUT, UPDATE),
            "uploads_table": (GET, UPDATE),
            # A presigned training image counted against its tenant's storage and per-model quota.
            "tenants_table": (GET, UPDATE),
        },
        objects={
            "jobs/*": (GET_OBJECT,),
            "trainings/*": (GET_OBJECT,),
            "uploads/*": (GET_OBJECT, PUT_OBJECT, DELETE_OBJECT),
            "models/*/data/*": (PUT_OBJECT,),
            # A presigned LoRA file imported: written converted, the one it replaces deleted.
            "models/*/adapters/*": (PUT_OBJECT, DELETE_OBJECT),
        },
        list_bucket=True,
        consumes_notifications=True,
    ),
    # functions/webhooks: a delivery per subscribed event, due ones swept; the job read for its subscription,
    # the tenant's secret made on first use.
    catalog.WEBHOOKS.name: Grants(
        tables={
            "jobs_table": (GET,),
            "webhook_secrets_table": (GET, PUT),
            "webhook_deliveries_table": (GET, QUERY, PUT, UPDATE),
        },
        consumes_kafka=True,
    ),
    # events/usecases/portraits: a portrait's record moved along, its generations queued, its model read.
    catalog.PORTRAITS.name: Grants(
        tables={"jobs_table": (GET, PUT, UPDATE), "models_table": (GET,), "base_models_table": (SCAN,)},
        consumes_kafka=True,
    ),
    # functions/reconciler: jobs stuck queued or with a lapsed lease (index queries), republished or failed by
    # their failed.json marker.
    catalog.RECONCILER.name: Grants(
        tables={"jobs_table": (GET, QUERY, UPDATE)},
        objects={"jobs/*/failed.json": (PUT_OBJECT,), "trainings/*/failed.json": (PUT_OBJECT,)},
    ),
    # functions/lag_metrics: the broker and CloudWatch only.
    catalog.LAG_METRICS.name: Grants(puts_lag_metric=True),
    # functions/bootstrap: the broker only.
    catalog.BOOTSTRAP.name: Grants(),
}


def role_logical_id(spec: FunctionSpec) -> str:
    """'ApiFunction' -> 'ApiFunctionRole'."""
    return f"{spec.logical_id}Role"


def log_group_logical_id(spec: FunctionSpec) -> str:
    """'ApiFunction' -> 'ApiFunctionLogGroup'."""
    return f"{spec.logical_id}LogGroup"


def function_name(config: DeployConfig, spec: FunctionSpec) -> str:
    """The deployed function's name."""
    return f"{config.prefix}-{spec.name}"


def function_statements(config: DeployConfig, spec: FunctionSpec) -> list[Json]:
    """The inline policy of one function's role (logs and ENIs come from AWSLambdaVPCAccessExecutionRole)."""
    grants = GRANTS[spec.name]
    settings = config.settings
    statements: list[Json] = []
    for table_property, actions in grants.tables.items():
        logical_id = catalog.table_logical_id(getattr(settings, table_property), config.prefix)
        resources = table_arns(logical_id) if QUERY in actions else get_att(logical_id, "Arn")
        statements.append(statement(list(actions), resources))
    by_action: dict[str, list[str]] = {}
    for pattern, actions in grants.objects.items():
        for action in actions:
            by_action.setdefault(action, []).append(pattern)
    for action, patterns in by_action.items():
        statements.append(statement(action, [bucket_keys_arn(catalog.BUCKET, p) for p in patterns]))
    if grants.list_bucket:
        statements.append(statement("s3:ListBucket", bucket_arn(catalog.BUCKET)))
    if grants.consumes_notifications:
        statements.append(
            statement(
                ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"],
                queue_arn(catalog.NOTIFICATIONS_QUEUE),
            )
        )
    if grants.consumes_kafka:
        # Lambda's Kafka poller finds the brokers' network with the function's role; these two have no
        # resource-level permissions. (The ENI calls are in the managed VPC policy.)
        statements.append(statement(["ec2:DescribeVpcs", "ec2:DescribeSecurityGroups"], "*"))
    if grants.puts_lag_metric:
        # PutMetricData has no resource ARN: the namespace condition is what keeps it to the lag metric.
        statements.append(
            statement(
                "cloudwatch:PutMetricData",
                "*",
                condition={"StringEquals": {"cloudwatch:namespace": LAG_NAMESPACE}},
            )
        )
    if grants.reads_admin_token:
        statements.append(statement("secretsmanager:GetSecretValue", ref(ADMIN_TOKEN_SECRET)))
    statements.extend(kafka_client_statements(config))
    return statements


# --- Payload limits of the HTTP API ----------------------------------------------------------------------------

# A synchronous Lambda invocation carries at most 6 MB of event (and 6 MB of response); API Gateway's HTTP API
# takes up to 10 MB, so Lambda is the bound. A binary body (images, multipart forms) arrives base64-encoded,
# 4/3 of its size, beside the headers and the request context: the largest raw body that fits is about 4.45 MiB.
# Bigger images go straight to S3 by presigned POST (25 MB; the S3-events function validates them).
LAMBDA_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024
EVENT_ENVELOPE_BYTES = 64 * 1024
LAMBDA_MAX_BODY_BYTES = (LAMBDA_SYNC_PAYLOAD_BYTES - EVENT_ENVELOPE_BYTES) * 3 // 4
MULTIPART_FRAMING_BYTES = 64 * 1024
# API Gateway ends an integration at 30 s at most; the function's own timeout (29 s) stays under it.
API_INTEGRATION_TIMEOUT_MS = 29_000


def api_body_limits(settings: Settings) -> dict[str, str]:
    """The API function's body limits, lowered to what Lambda can carry: the API answers 413 naming the limit
    instead of API Gateway failing the invocation."""
    return {
        "LF_MAX_REQUEST_BYTES": str(min(settings.max_request_bytes, LAMBDA_MAX_BODY_BYTES)),
        "LF_MAX_IMAGE_BYTES": str(min(settings.max_image_bytes, LAMBDA_MAX_BODY_BYTES - MULTIPART_FRAMING_BYTES)),
        "LF_MAX_TRAINING_UPLOAD_BYTES": str(min(settings.max_training_upload_bytes, LAMBDA_MAX_BODY_BYTES)),
        "LF_MAX_ADAPTER_BYTES": str(min(settings.max_adapter_bytes, LAMBDA_MAX_BODY_BYTES)),
    }


# --- The functions ----------------------------------------------------------------------------------------------


def function_environment(config: DeployConfig, spec: FunctionSpec) -> dict[str, Json | str]:
    """The environment of one function: resource names (from the prefix, as the bootstrap names them), region,
    the brokers, and the API's body limits."""
    environment: dict[str, Json | str] = {
        "LF_RESOURCE_PREFIX": config.prefix,
        "LF_AWS_REGION": REGION,
        **kafka_client_environment(config),
    }
    if spec is catalog.API:
        environment.update(api_body_limits(config.settings))
        environment["LF_ADMIN_TOKEN_SECRET_ARN"] = ref(ADMIN_TOKEN_SECRET)
    return environment


# --- The operator's credential ----------------------------------------------------------------------------------

ADMIN_TOKEN_SECRET = "AdminTokenSecret"


def _add_admin_token(fragment: Fragment, config: DeployConfig) -> None:
    """The operator API's token (/v1/admin/, /metrics), generated by Secrets Manager: it never passes through a
    template, a parameter or the function's configuration; the API reads it by ARN at its first request."""
    fragment.add(
        ADMIN_TOKEN_SECRET,
        "AWS::SecretsManager::Secret",
        {
            "Name": f"{config.prefix}-admin-token",
            "Description": f"{config.prefix}: the operator token of /v1/admin/ and /metrics (Bearer)",
            "GenerateSecretString": {"PasswordLength": 48, "ExcludePunctuation": True},
        },
        DeletionPolicy="Delete",
        UpdateReplacePolicy="Delete",
    )
    fragment.output(
        "AdminTokenSecretArn",
        ref(ADMIN_TOKEN_SECRET),
        "the operator token's secret: aws secretsmanager get-secret-value --secret-id <arn> --query SecretString",
    )


def _add_function(fragment: Fragment, config: DeployConfig, spec: FunctionSpec) -> None:
    name = function_name(config, spec)
    fragment.add(
        log_group_logical_id(spec),
        "AWS::Logs::LogGroup",
        {"LogGroupName": f"/aws/lambda/{name}", "RetentionInDays": LOG_RETENTION_DAYS},
        **LOGS_GO_WITH_THE_STACK,
    )
    add_role(
        fragment,
        role_logical_id(spec),
        service="lambda.amazonaws.com",
        statements=function_statements(config, spec),
        managed_policies=[LAMBDA_VPC_ACCESS],
        description=f"{name}: {spec.purpose}",
    )
    fragment.add(
        spec.logical_id,
        "AWS::Lambda::Function",
        {
            "FunctionName": name,
            "Description": spec.purpose,
            "Runtime": RUNTIME,
            "Architectures": [ARCHITECTURE],
            "Handler": spec.handler,
            "MemorySize": spec.memory_mb,
            "Timeout": spec.timeout_s,
            "Code": {"S3Bucket": ref(catalog.CODE_BUCKET_PARAMETER), "S3Key": ref(catalog.CODE_KEY_PARAMETER)},
            "Role": get_att(role_logical_id(spec), "Arn"),
            "Environment": {"Variables": function_environment(config, spec)},
            # MSK is reachable only inside the VPC; AWS APIs other than S3/DynamoDB go out through the NAT.
            "VpcConfig": {
                "SubnetIds": private_subnet_ids(),
                "SecurityGroupIds": [security_group_id(catalog.FUNCTIONS_SECURITY_GROUP)],
            },
            "LoggingConfig": {"LogGroup": ref(log_group_logical_id(spec)), "LogFormat": "Text"},
        },
    )


def _allow_invoke(fragment: Fragment, logical_id: str, spec: FunctionSpec, principal: str, source_arn: Json) -> None:
    fragment.add(
        logical_id,
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": ref(spec.logical_id),
            "Principal": principal,
            "SourceArn": source_arn,
        },
    )


# --- The HTTP API -----------------------------------------------------------------------------------------------

HTTP_API = "HttpApi"
HTTP_API_INTEGRATION = "HttpApiIntegration"
HTTP_API_ROUTE = "HttpApiDefaultRoute"
HTTP_API_STAGE = "HttpApiDefaultStage"
HTTP_API_ACCESS_LOGS = "HttpApiAccessLogs"
THROTTLING_RATE_PARAMETER = "ApiThrottlingRateLimit"
THROTTLING_BURST_PARAMETER = "ApiThrottlingBurstLimit"
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "method": "$context.httpMethod",
    "path": "$context.path",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "latencyMs": "$context.responseLatency",
    "integrationLatencyMs": "$context.integrationLatency",
    "integrationError": "$context.integrationErrorMessage",
}


def _add_http_api(fragment: Fragment, config: DeployConfig) -> None:
    fragment.parameter(
        THROTTLING_RATE_PARAMETER, "steady requests per second the HTTP API admits", Type="Number", Default="100"
    )
    fragment.parameter(THROTTLING_BURST_PARAMETER, "request burst the HTTP API admits", Type="Number", Default="200")
    fragment.add(
        HTTP_API,
        "AWS::ApiGatewayV2::Api",
        {
            "Name": f"{config.prefix}-api",
            "ProtocolType": "HTTP",
            "Description": "LoRA Foundry's HTTP API; every route goes to the API function (FastAPI under Mangum)",
        },
    )
    fragment.add(
        HTTP_API_INTEGRATION,
        "AWS::ApiGatewayV2::Integration",
        {
            "ApiId": ref(HTTP_API),
            "IntegrationType": "AWS_PROXY",
            "IntegrationUri": get_att(catalog.API.logical_id, "Arn"),
            "PayloadFormatVersion": "2.0",
            "TimeoutInMillis": API_INTEGRATION_TIMEOUT_MS,
        },
    )
    fragment.add(
        HTTP_API_ROUTE,
        "AWS::ApiGatewayV2::Route",
        {
            "ApiId": ref(HTTP_API),
            "RouteKey": "$default",
            "Target": join("/", ["integrations", ref(HTTP_API_INTEGRATION)]),
        },
    )
    fragment.add(
        HTTP_API_ACCESS_LOGS,
        "AWS::Logs::LogGroup",
        {"LogGroupName": f"/aws/apigateway/{config.prefix}-api", "RetentionInDays": LOG_RETENTION_DAYS},
        **LOGS_GO_WITH_THE_STACK,
    )
    fragment.add(
        HTTP_API_STAGE,
        "AWS::ApiGatewayV2::Stage",
        {
            "ApiId": ref(HTTP_API),
            "StageName": "$default",
            "AutoDeploy": True,
            "DefaultRouteSettings": {
                "ThrottlingRateLimit": ref(THROTTLING_RATE_PARAMETER),
                "ThrottlingBurstLimit": ref(THROTTLING_BURST_PARAMETER),
            },
            "AccessLogSettings": {
                "DestinationArn": get_att(HTTP_API_ACCESS_LOGS, "Arn"),
                "Format": json.dumps(ACCESS_LOG_FORMAT, separators=(",", ":")),
            },
        },
    )
    _allow_invoke(
        fragment,
        "ApiFunctionHttpApiPermission",
        catalog.API,
        "apigateway.amazonaws.com",
        sub("arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${HttpApi}/*"),
    )
    fragment.output("ApiUrl", get_att(HTTP_API, "ApiEndpoint"), "the HTTP API's base URL")


# --- Event sources ------------------------------------------------------------------------------------------------

NOTIFICATIONS_BATCH_SIZE = 10
NOTIFICATIONS_BATCHING_WINDOW_S = 1
# At most this many S3-events functions at once: DynamoDB on-demand and the broker absorb it, and it leaves the
# account's concurrency to the API.
NOTIFICATIONS_MAX_CONCURRENCY = 20
LIFECYCLE_BATCH_SIZE = 100
# Partial batch responses on a Kafka source need provisioned mode (pollers reserved for the mapping); one poller
# handles about 5 MB/s, lifecycle events are small, so a few serve a busy deployment.
LIFECYCLE_MIN_POLLERS = 1
LIFECYCLE_MAX_POLLERS = 3
REPORT_BATCH_ITEM_FAILURES = ["ReportBatchItemFailures"]


def _add_event_sources(fragment: Fragment, config: DeployConfig) -> None:
    fragment.add(
        "S3EventsFunctionQueueSource",
        "AWS::Lambda::EventSourceMapping",
        {
            "EventSourceArn": queue_arn(catalog.NOTIFICATIONS_QUEUE),
            "FunctionName": ref(catalog.S3_EVENTS.logical_id),
            "BatchSize": NOTIFICATIONS_BATCH_SIZE,
            "MaximumBatchingWindowInSeconds": NOTIFICATIONS_BATCHING_WINDOW_S,
            "FunctionResponseTypes": REPORT_BATCH_ITEM_FAILURES,
            "ScalingConfig": {"MaximumConcurrency": NOTIFICATIONS_MAX_CONCURRENCY},
        },
    )
    settings = config.settings
    for spec, group in (
        (catalog.WEBHOOKS, settings.kafka_webhooks_consumer_group),
        (catalog.PORTRAITS, settings.kafka_portraits_consumer_group),
    ):
        fragment.add(
            f"{spec.logical_id}LifecycleSource",
            "AWS::Lambda::EventSourceMapping",
            {
                **kafka_event_source(config, JOB_LIFECYCLE, group),
                "FunctionName": ref(spec.logical_id),
                "BatchSize": LIFECYCLE_BATCH_SIZE,
                "FunctionResponseTypes": REPORT_BATCH_ITEM_FAILURES,
                "ProvisionedPollerConfig": {
                    "MinimumPollers": LIFECYCLE_MIN_POLLERS,
                    "MaximumPollers": LIFECYCLE_MAX_POLLERS,
                },
            },
        )


# --- Schedules ------------------------------------------------------------------------------------------------------

SCHEDULE = "rate(1 minute)"
# Function -> why it runs every minute. The webhooks function tells a schedule from a Kafka batch by the event
# EventBridge sends ("source": "aws.events", "detail-type": "Scheduled Event"), so the targets pass no Input.
SCHEDULED: tuple[tuple[FunctionSpec, str], ...] = (
    (catalog.WEBHOOKS, "sends the webhook deliveries whose retry is due"),
    (catalog.RECONCILER, "republishes jobs stuck queued or whose worker's lease lapsed"),
    (catalog.LAG_METRICS, "publishes the worker groups' consumer lag the GPU services scale on"),
)


def schedule_logical_id(spec: FunctionSpec) -> str:
    """'ReconcilerFunction' -> 'ReconcilerFunctionSchedule'."""
    return f"{spec.logical_id}Schedule"


def _add_schedules(fragment: Fragment, config: DeployConfig) -> None:
    for spec, why in SCHEDULED:
        rule = schedule_logical_id(spec)
        fragment.add(
            rule,
            "AWS::Events::Rule",
            {
                "Name": f"{function_name(config, spec)}-every-minute",
                "Description": why,
                "ScheduleExpression": SCHEDULE,
                "State": "ENABLED",
                "Targets": [{"Id": spec.name, "Arn": get_att(spec.logical_id, "Arn")}],
            },
        )
        _allow_invoke(fragment, f"{rule}Permission", spec, "events.amazonaws.com", get_att(rule, "Arn"))


# --- The topics -------------------------------------------------------------------------------------------------------

KAFKA_TOPICS = "KafkaTopics"
# Until these exist, the bootstrap function has no way out to the MSK API (GetBootstrapBrokers) nor to S3 for
# its answer; depending on them also keeps them until the resource's Delete has been answered.
KAFKA_TOPICS_NEEDS = ("PrivateDefaultRoute", "S3GatewayEndpoint")
# CloudFormation waits this long for an answer (its default is an hour): the function's own timeout and a margin.
KAFKA_TOPICS_SERVICE_TIMEOUT_S = catalog.BOOTSTRAP.timeout_s + 60


def _add_topics(fragment: Fragment, config: DeployConfig) -> None:
    fragment.add(
        KAFKA_TOPICS,
        "Custom::KafkaTopics",
        {
            "ServiceToken": get_att(catalog.BOOTSTRAP.logical_id, "Arn"),
            "ServiceTimeout": KAFKA_TOPICS_SERVICE_TIMEOUT_S,
            # The topics as data: a change in the list (a topic, partitions, replicas) is an Update, which runs
            # the bootstrap again; the function itself reads them from its settings.
            "Topics": [f"{t.name}:{t.partitions}:{t.replication_factor}" for t in config.resources.topics],
        },
        DependsOn=list(KAFKA_TOPICS_NEEDS),
    )


def functions_fragment(config: DeployConfig) -> Fragment:
    """Every function with its log group and role, the HTTP API, the event sources, the schedules, the topics."""
    fragment = Fragment()
    fragment.parameter(
        catalog.CODE_BUCKET_PARAMETER, "S3 bucket holding the Lambda package (lorafoundry package lambda)"
    )
    fragment.parameter(catalog.CODE_KEY_PARAMETER, "key of the Lambda package's zip in CodeBucket")
    _add_admin_token(fragment, config)
    for spec in catalog.FUNCTIONS:
        _add_function(fragment, config, spec)
    _add_http_api(fragment, config)
    _add_event_sources(fragment, config)
    _add_schedules(fragment, config)
    _add_topics(fragment, config)
    return fragment
