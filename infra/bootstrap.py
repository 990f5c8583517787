"""Create (or confirm) every resource in `infra.resources`; safe to run any number of times."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from botocore.exceptions import ClientError

from infra.aws import AwsClients
from infra.kafka import admin_kwargs
from infra.kafka_auth import resolve_kafka_settings
from infra.repositories.api_keys import ApiKeyRepository
from infra.resources import Resources, resources_for
from infra.settings import Settings

log = logging.getLogger(__name__)

DEV_TENANT = "dev"


async def _ensure_bucket(clients: AwsClients, resources: Resources) -> None:
    try:
        await clients.s3.head_bucket(Bucket=resources.bucket)
    except ClientError:
        kwargs: dict = {"Bucket": resources.bucket}
        region = clients.settings.aws_region
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            await clients.s3.create_bucket(**kwargs)
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise


async def _ensure_expirations(clients: AwsClients, resources: Resources) -> None:
    if not resources.expirations:
        return
    rules = [
        {
            "ID": f"expire-{prefix.strip('/')}",
            "Filter": {"Prefix": prefix},
            "Status": "Enabled",
            "Expiration": {"Days": days},
        }
        for prefix, days in resources.expirations
    ]
    await clients.s3.put_bucket_lifecycle_configuration(
        Bucket=resources.bucket, LifecycleConfiguration={"Rules": rules}
    )


async def _ensure_tables(clients: AwsClients, resources: Resources) -> None:
    for table in resources.tables:
        try:
            await clients.dynamodb.create_table(**table.create_kwargs())
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise
        waiter = clients.dynamodb.get_waiter("table_exists")
        await waiter.wait(TableName=table.name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        if table.ttl_attribute:
            try:
                await clients.dynamodb.update_time_to_live(
                    TableName=table.name,
                    TimeToLiveSpecification={"Enabled": True, "AttributeName": table.ttl_attribute},
                )
            except ClientError as exc:
                if "already enabled" not in str(exc).lower():
                    raise


async def _queue_arn(clients: AwsClients, url: str) -> str:
    attrs = await clients.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return attrs["Attributes"]["QueueArn"]


async def _ensure_queues(clients: AwsClients, resources: Resources) -> dict[str, str]:
    """Create the queues (dead-letter queues first); returns queue name -> ARN."""
    arns: dict[str, str] = {}
    for queue in resources.queues:
        attributes = {"VisibilityTimeout": str(queue.visibility_timeout)}
        if queue.dead_letter_name:
            dlq = await clients.sqs.create_queue(QueueName=queue.dead_letter_name)
            arns[queue.dead_letter_name] = await _queue_arn(clients, dlq["QueueUrl"])
            attributes["RedrivePolicy"] = json.dumps(
                {"deadLetterTargetArn": arns[queue.dead_letter_name], "maxReceiveCount": queue.max_receive_count}
            )
        created = await clients.sqs.create_queue(QueueName=queue.name)
        url = created["QueueUrl"]
        arns[queue.name] = await _queue_arn(clients, url)
        # S3 may only deliver to the queue if its policy allows it (ignored by moto, required on AWS).
        attributes["Policy"] = json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "s3.amazonaws.com"},
                        "Action": "sqs:SendMessage",
                        "Resource": arns[queue.name],
                        "Condition": {"ArnLike": {"aws:SourceArn": f"arn:aws:s3:::{resources.bucket}"}},
                    }
                ],
            }
        )
        await clients.sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    return arns


async def _ensure_notifications(clients: AwsClients, resources: Resources, arns: dict[str, str]) -> None:
    configurations = [
        {
            "Id": spec.id,
            "QueueArn": arns[spec.queue_name],
            "Events": ["s3:ObjectCreated:*"],
            "Filter": {
                "Key": {
                    "FilterRules": [
                        {"Name": "prefix", "Value": spec.prefix},
                        {"Name": "suffix", "Value": spec.suffix},
                    ]
                }
            },
        }
        for spec in resources.notifications
    ]
    current = await clients.s3.get_bucket_notification_configuration(Bucket=resources.bucket)
    if current.get("QueueConfigurations") == configurations:
        return  # Putting it again would send another s3:TestEvent for nothing.
    await clients.s3.put_bucket_notification_configuration(
        Bucket=resources.bucket, NotificationConfiguration={"QueueConfigurations": configurations}
    )


async def ensure_topics(settings: Settings, resources: Resources, timeout_s: float = 30.0) -> None:
    """Create the Kafka topics, waiting for the broker to answer (it may still be starting)."""
    settings = await resolve_kafka_settings(settings)  # on AWS: the brokers and credentials named by ARN
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        admin = AIOKafkaAdminClient(**admin_kwargs(settings))
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [
                NewTopic(t.name, num_partitions=t.partitions, replication_factor=t.replication_factor)
                for t in resources.topics
                if t.name not in existing
            ]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):  # another bootstrap won the race
                    await admin.create_topics(missing)
            return
        except KafkaError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)  # Retry pause while the broker starts, not a test synchronisation.
        finally:
            await admin.close()


async def bootstrap(settings: Settings, *, kafka: bool = True) -> Resources:
    """Create every resource that is missing; return what was ensured."""
    resources = resources_for(settings)
    async with AwsClients(settings) as clients:
        await _ensure_bucket(clients, resources)
        await _ensure_expirations(clients, resources)
        await _ensure_tables(clients, resources)
        arns = await _ensure_queues(clients, resources)
        await _ensure_notifications(clients, resources, arns)
        if settings.dev_api_key:
            await ApiKeyRepository(clients.dynamodb, settings.api_keys_table).put(
                settings.dev_api_key.get_secret_value(),
                tenant_id=DEV_TENANT,
                name="development key",
                signing_secret=settings.dev_signing_secret.get_secret_value() if settings.dev_signing_secret else None,
                require_signed_deletes=settings.dev_require_signed_deletes,
            )
    if kafka:
        await ensure_topics(settings, resources)
    log.info(
        "bootstrap complete: bucket %s, %d tables, %d topics",
        resources.bucket,
        len(resources.tables),
        len(resources.topics),
    )
    return resources


def main() -> None:
    """`python -m infra.bootstrap`: bootstrap from the environment's settings."""
    from infra.settings import get_settings

    logging.basicConfig(level=logging.INFO)
    asyncio.run(bootstrap(get_settings()))


if __name__ == "__main__":
    main()
