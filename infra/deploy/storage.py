"""The template's storage: the artifacts bucket (encryption, no public access, TLS only, lifecycle, notifications),
the notifications queue and its dead-letter queue, and every DynamoDB table, all read from `infra.resources`
(the list the bootstrap applies), so the deployment and the bootstrap cannot disagree on a name, key or index."""

from __future__ import annotations

from infra.deploy import catalog
from infra.deploy.cfn import ACCOUNT, Fragment, Json, ref
from infra.deploy.config import DeployConfig
from infra.deploy.iam import bucket_arn, bucket_objects_arn, policy_document, queue_arn, statement
from infra.resources import NotificationSpec, QueueSpec, Resources, TableSpec

# Lambda refuses an SQS event source whose queue's visibility timeout is shorter than the function's timeout, and
# AWS recommends six times it, so that Lambda can retry a batch whose invocation was throttled or failed before
# the messages turn visible to another poller. The bootstrap's 15 s suits the local poller only.
VISIBILITY_TIMEOUT_PER_FUNCTION_TIMEOUT = 6
# A dead letter waits the longest SQS allows (14 days) for someone to look at it.
DEAD_LETTER_RETENTION_S = 14 * 24 * 3600
# Uploads abandoned half-way cost storage until aborted.
ABORT_INCOMPLETE_UPLOADS_DAYS = 1
# A notification waits up to 4 days (SQS's default, stated here rather than implied) for the function to take it.
NOTIFICATION_RETENTION_S = 4 * 24 * 3600
# Data outlives the stack: a teardown or a replacement keeps the bucket and the tables.
RETAIN = {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}
# Queues hold only notifications of objects that stay in the bucket: a teardown may delete them.
DELETE = {"DeletionPolicy": "Delete", "UpdateReplacePolicy": "Delete"}
QUEUE_POLICY = "NotificationsQueuePolicy"
BUCKET_POLICY = "ArtifactsBucketPolicy"


def queue_visibility_timeout(spec: QueueSpec) -> int:
    """The deployed queue's visibility timeout: the bootstrap's value, raised to six times the S3-events
    function's timeout (see VISIBILITY_TIMEOUT_PER_FUNCTION_TIMEOUT)."""
    return max(spec.visibility_timeout, VISIBILITY_TIMEOUT_PER_FUNCTION_TIMEOUT * catalog.S3_EVENTS.timeout_s)


def table_properties(spec: TableSpec) -> Json:
    """AWS::DynamoDB::Table properties: the bootstrap's CreateTable shape (keys, attributes, indexes, on-demand
    billing) plus what only a deployment sets (TTL, point-in-time recovery, encryption)."""
    properties: Json = dict(spec.create_kwargs())
    properties["PointInTimeRecoverySpecification"] = {"PointInTimeRecoveryEnabled": True}
    # The AWS managed key (aws/dynamodb) rather than the default AWS owned one: its use shows in CloudTrail.
    properties["SSESpecification"] = {"SSEEnabled": True}
    if spec.ttl_attribute:
        properties["TimeToLiveSpecification"] = {"AttributeName": spec.ttl_attribute, "Enabled": True}
    return properties


def _queue_logical_id(name: str, queue: QueueSpec) -> str:
    if name == queue.name:
        return catalog.NOTIFICATIONS_QUEUE
    if name == queue.dead_letter_name:
        return catalog.NOTIFICATIONS_DLQ
    raise ValueError(f"no logical id for queue {name!r}")


def _add_queues(fragment: Fragment, queue: QueueSpec) -> None:
    properties: Json = {
        "QueueName": queue.name,
        "VisibilityTimeout": queue_visibility_timeout(queue),
        "MessageRetentionPeriod": NOTIFICATION_RETENTION_S,
        "SqsManagedSseEnabled": True,
    }
    if queue.dead_letter_name:
        fragment.add(
            catalog.NOTIFICATIONS_DLQ,
            "AWS::SQS::Queue",
            {
                "QueueName": queue.dead_letter_name,
                "MessageRetentionPeriod": DEAD_LETTER_RETENTION_S,
                "SqsManagedSseEnabled": True,
            },
            **DELETE,
        )
        properties["RedrivePolicy"] = {
            "deadLetterTargetArn": queue_arn(catalog.NOTIFICATIONS_DLQ),
            "maxReceiveCount": queue.max_receive_count,
        }
    fragment.add(catalog.NOTIFICATIONS_QUEUE, "AWS::SQS::Queue", properties, **DELETE)


def _queue_policy(bucket_name: str) -> Json:
    # Only this bucket of this account may send: the ARN is built from the name, not a GetAtt of the bucket,
    # because the bucket depends on this policy (S3 checks the destination when the notification is set).
    return policy_document(
        [
            statement(
                "sqs:SendMessage",
                queue_arn(catalog.NOTIFICATIONS_QUEUE),
                sid="S3Notifications",
                condition={
                    "ArnLike": {"aws:SourceArn": {"Fn::Sub": f"arn:${{AWS::Partition}}:s3:::{bucket_name}"}},
                    "StringEquals": {"aws:SourceAccount": ACCOUNT},
                },
            )
            | {"Principal": {"Service": "s3.amazonaws.com"}}
        ]
    )


def _notification_configuration(notifications: tuple[NotificationSpec, ...], queue: QueueSpec) -> Json:
    return {
        "QueueConfigurations": [
            {
                "Event": "s3:ObjectCreated:*",
                "Queue": queue_arn(_queue_logical_id(spec.queue_name, queue)),
                "Filter": {
                    "S3Key": {
                        "Rules": [{"Name": "prefix", "Value": spec.prefix}, {"Name": "suffix", "Value": spec.suffix}]
                    }
                },
            }
            for spec in notifications
        ]
    }


def _lifecycle_configuration(expirations: tuple[tuple[str, int], ...]) -> Json:
    rules: list[Json] = [
        {
            "Id": f"expire-{prefix.strip('/')}",
            "Status": "Enabled",
            "Prefix": prefix,
            "ExpirationInDays": days,
        }
        for prefix, days in expirations
    ]
    rules.append(
        {
            "Id": "abort-incomplete-multipart-uploads",
            "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_INCOMPLETE_UPLOADS_DAYS},
        }
    )
    return {"Rules": rules}


def _add_bucket(fragment: Fragment, resources: Resources, queue: QueueSpec) -> None:
    fragment.add(
        catalog.BUCKET,
        "AWS::S3::Bucket",
        {
            "BucketName": resources.bucket,
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            "LifecycleConfiguration": _lifecycle_configuration(resources.expirations),
            "NotificationConfiguration": _notification_configuration(resources.notifications, queue),
        },
        DependsOn=[QUEUE_POLICY],
        **RETAIN,
    )
    fragment.add(
        BUCKET_POLICY,
        "AWS::S3::BucketPolicy",
        {
            "Bucket": ref(catalog.BUCKET),
            "PolicyDocument": policy_document(
                [
                    statement(
                        "s3:*",
                        [bucket_arn(catalog.BUCKET), bucket_objects_arn(catalog.BUCKET)],
                        sid="TlsOnly",
                        effect="Deny",
                        condition={"Bool": {"aws:SecureTransport": "false"}},
                    )
                    | {"Principal": "*"}
                ]
            ),
        },
    )


def storage_fragment(config: DeployConfig) -> Fragment:
    """The bucket, the notifications queue with its DLQ and the queue policy S3 sends through, every table;
    outputs name them."""
    resources = config.resources
    fragment = Fragment()
    (queue,) = resources.queues  # one queue receives every notification; a second would need its own ids
    _add_queues(fragment, queue)
    fragment.add(
        QUEUE_POLICY,
        "AWS::SQS::QueuePolicy",
        {"Queues": [ref(catalog.NOTIFICATIONS_QUEUE)], "PolicyDocument": _queue_policy(resources.bucket)},
    )
    _add_bucket(fragment, resources, queue)
    fragment.output("BucketName", ref(catalog.BUCKET), "the artifacts bucket")
    fragment.output("NotificationsQueueUrl", ref(catalog.NOTIFICATIONS_QUEUE), "the S3 notifications queue")
    fragment.output(
        "NotificationsDeadLetterQueueUrl", ref(catalog.NOTIFICATIONS_DLQ), "notifications that failed too often"
    )
    for spec in resources.tables:
        logical_id = catalog.table_logical_id(spec.name, config.prefix)
        fragment.add(logical_id, "AWS::DynamoDB::Table", table_properties(spec), **RETAIN)
        fragment.output(f"{logical_id}Name", ref(logical_id), f"the {spec.name} table")
    return fragment
