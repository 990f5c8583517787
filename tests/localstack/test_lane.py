"""The lane itself: LocalStack answers as LocalStack, DynamoDB is served by the moto provider plugin, and the
differences from AWS the code must live with are still the ones docs and handlers assume (a test fails when
LocalStack changes them, so the list stays true)."""

from __future__ import annotations

import json
import secrets
from urllib.parse import unquote_plus

import httpx

from infra.local.processes import wait_until


def test_it_is_localstack_with_the_lanes_services_up(localstack_endpoint: str) -> None:
    health = httpx.get(f"{localstack_endpoint}/_localstack/health", timeout=5).json()
    assert health["version"] == "2026.3.0"
    for service in ("s3", "sqs", "dynamodb", "cloudformation"):
        assert health["services"][service] in {"available", "running"}, health["services"]


def test_dynamodb_is_served_by_the_moto_plugin_and_creates_tables_active(aws) -> None:
    dynamodb = aws("dynamodb")
    name = f"lane-{secrets.token_hex(3)}"
    created = dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    # AWS answers CREATING and takes seconds; code that waits on ACTIVE is not exercised here.
    assert created["TableDescription"]["TableStatus"] == "ACTIVE"
    dynamodb.put_item(
        TableName=name, Item={"pk": {"S": "a"}, "n": {"N": "1"}}, ConditionExpression="attribute_not_exists(pk)"
    )
    assert dynamodb.get_item(TableName=name, Key={"pk": {"S": "a"}})["Item"]["n"] == {"N": "1"}
    dynamodb.delete_table(TableName=name)


def test_s3_notifications_encode_spaces_as_percent_20_with_a_constant_sequencer(aws) -> None:
    s3, sqs = aws("s3"), aws("sqs")
    name = f"lane-{secrets.token_hex(3)}"
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.create_bucket(Bucket=name)
    s3.put_bucket_notification_configuration(
        Bucket=name,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": queue_arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    for key in ("jobs/a b/one.json", "jobs/a b/two.json"):
        s3.put_object(Bucket=name, Key=key, Body=b"{}")
    records: list[dict] = []

    def received_both() -> bool:
        for message in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        ):
            records.extend(r for r in json.loads(message["Body"]).get("Records", []))
        return len(records) >= 2

    wait_until(received_both, 30, "two S3 notifications")
    keys = sorted(record["s3"]["object"]["key"] for record in records)
    # AWS documents "+" for a space; LocalStack sends "%20". unquote_plus, which the S3-events handler uses,
    # reads both.
    assert keys == ["jobs/a%20b/one.json", "jobs/a%20b/two.json"]
    assert [unquote_plus(key) for key in keys] == ["jobs/a b/one.json", "jobs/a b/two.json"]
    # On AWS the sequencer orders events of one key; here it is present but the same for every event.
    assert len({record["s3"]["object"]["sequencer"] for record in records}) == 1
