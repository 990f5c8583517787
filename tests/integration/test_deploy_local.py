"""The synthesized template deployed into moto's CloudFormation (the session's moto server, over HTTP), once per
Kafka mode, under a prefix of its own: the stack creates, and what it made matches `infra/resources.py`.

What moto cannot create is dropped first (`infra.deploy.local_deploy.deployable_subset`), and the dropped set is
stated below per mode, so a change in what a local deployment proves shows as a failing test. Those parts (MSK,
Secrets Manager, the queue and bucket policies, API Gateway v2, ECS capacity providers and scaling, alarms, the
topics' custom resource, Kafka event sources) are checked by cfn-lint (tests/unit/test_deploy_lint.py) and by
the tests on the template itself (tests/unit/test_deploy_template.py).

moto's CloudFormation also ignores some properties of what it does create: a table's TTL and point-in-time
recovery, a bucket's notifications and lifecycle rules. The template tests check them, and the LocalStack lane
(tests/localstack/) checks them on a CloudFormation that applies them. And its stack deletion cannot finish
with a VPC: its EC2 models of routes, route tables, VPC endpoints and NAT gateways have no CloudFormation
delete, so the VPC still has dependencies; the teardown test accepts exactly that error (after it moto has
deleted everything else and forgotten the stack) and leaves those network pieces in the session's moto, which
nothing else there uses.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from infra.aws import client_kwargs
from infra.deploy import catalog
from infra.deploy.config import DeployConfig, KafkaMode
from infra.deploy.local_deploy import MOTO_UNSUPPORTED, deployable_subset, local_parameters
from infra.deploy.template import synthesize
from infra.settings import Settings
from tests.support import placeholder_code_zip, wait_for_stack

pytestmark = [
    pytest.mark.integration,
    # Under the LocalStack lane `moto_endpoint` is LocalStack, whose CloudFormation has its own test and list.
    pytest.mark.skipif(
        os.environ.get("LF_TEST_AWS") == "localstack",
        reason="moto's CloudFormation only; tests/localstack/test_deploy_localstack.py deploys into LocalStack's",
    ),
]

STACK_DEADLINE_S = 60.0
WORKER_KINDS = ("Generator", "Trainer")
# What moto cannot create, whatever the Kafka mode: the SQS and S3 policies, the HTTP API (API Gateway v2) and
# the API function's permission for it, the Kafka event sources of the lifecycle functions, the topics' custom
# resource (its function would have to run), and per GPU worker kind its capacity provider, scaling on lag,
# alarm and service (which names the capacity provider).
ALWAYS_DROPPED = {
    # The operator token's secret: the API function keeps a stand-in ARN (local_deploy.STAND_INS).
    "AdminTokenSecret",
    "NotificationsQueuePolicy",
    "ArtifactsBucketPolicy",
    "HttpApi",
    "HttpApiIntegration",
    "HttpApiDefaultRoute",
    "HttpApiDefaultStage",
    "ApiFunctionHttpApiPermission",
    "WebhooksFunctionLifecycleSource",
    "PortraitsFunctionLifecycleSource",
    "KafkaTopics",
    "WorkersCapacityProviders",
    *(
        f"{kind}{part}"
        for kind in WORKER_KINDS
        for part in ("CapacityProvider", "ScalableTarget", "LagTracking", "WakeFromZero", "WorkWaitingAlarm", "Service")
    ),
}
# On MSK, every function's and worker task's role names the cluster (IAM statements), so with the cluster go
# every function with its role, event source and schedule, and the task definitions: locally, the external mode
# is the one that proves the functions and their schedules.
MSK_DROPPED = {
    "KafkaCluster",
    *(f"{spec.logical_id}{part}" for spec in catalog.FUNCTIONS for part in ("", "Role")),
    "S3EventsFunctionQueueSource",
    *(
        f"{spec.logical_id}{part}"
        for spec in (catalog.WEBHOOKS, catalog.RECONCILER, catalog.LAG_METRICS)
        for part in ("Schedule", "SchedulePermission")
    ),
    *(f"{kind}{part}" for kind in WORKER_KINDS for part in ("TaskRole", "TaskDefinition")),
}
DROPPED_BY_MODE: dict[KafkaMode, set[str]] = {
    KafkaMode.MSK_SERVERLESS: ALWAYS_DROPPED | MSK_DROPPED,
    # SCRAM credentials: a KMS key (moto misreads its tags), the secret, its association with the cluster.
    KafkaMode.MSK_PROVISIONED: ALWAYS_DROPPED
    | MSK_DROPPED
    | {"KafkaCredentialsKey", "KafkaCredentials", "KafkaScramSecretAssociation"},
    KafkaMode.EXTERNAL: ALWAYS_DROPPED,
}
PROVES_FUNCTIONS = {KafkaMode.EXTERNAL}


@dataclass
class Deployment:
    """One stack created from the deployable subset of one synthesized template."""

    config: DeployConfig
    stack_name: str
    template: dict
    subset: dict
    dropped: dict[str, str]
    clients: dict[str, Any]
    code_bucket: str
    deleted: bool = False

    def delete(self) -> None:
        """Delete the stack. moto ends with a DependencyViolation on the VPC (see the module's docstring), and
        only that is let through; by then it has deleted every other resource and forgotten the stack."""
        cloudformation = self.client("cloudformation")
        vpc_ids = [r["PhysicalResourceId"] for r in self.resources_described() if r["ResourceType"] == "AWS::EC2::VPC"]
        self.deleted = True
        try:
            cloudformation.delete_stack(StackName=self.stack_name)
        except cloudformation.exceptions.ClientError as error:
            message = error.response["Error"]["Message"]
            if error.response["Error"]["Code"] != "DependencyViolation" or not any(v in message for v in vpc_ids):
                raise

    def resources_described(self) -> list[dict]:
        return self.client("cloudformation").describe_stack_resources(StackName=self.stack_name)["StackResources"]

    def client(self, service: str) -> Any:
        return self.clients[service]

    def physical_ids(self) -> dict[str, str]:
        """Logical id -> physical id of every resource the stack holds."""
        # moto gives some resources no physical id (a security group ingress rule): none is looked up here.
        return {r["LogicalResourceId"]: r.get("PhysicalResourceId", "") for r in self.resources_described()}

    def of_type(self, resource_type: str) -> dict[str, dict]:
        """The subset's resources of one type, by logical id."""
        return {lid: r for lid, r in self.subset["Resources"].items() if r["Type"] == resource_type}


def retained_data(deployment: Deployment) -> tuple[list[str], list[str]]:
    """The tables and buckets of the template that keep their data when the stack goes (DeletionPolicy Retain)."""
    resources = deployment.template["Resources"].values()
    retained = [r for r in resources if r.get("DeletionPolicy") == "Retain"]
    tables = [r["Properties"]["TableName"] for r in retained if r["Type"] == "AWS::DynamoDB::Table"]
    buckets = [r["Properties"]["BucketName"] for r in retained if r["Type"] == "AWS::S3::Bucket"]
    return tables, buckets


def remove_retained(deployment: Deployment) -> None:
    """Delete what the stack left on purpose, so the session's moto holds nothing of this test."""
    tables, buckets = retained_data(deployment)
    dynamodb, s3 = deployment.client("dynamodb"), deployment.client("s3")
    existing = set(dynamodb.list_tables()["TableNames"])
    for table in tables:
        if table in existing:
            dynamodb.delete_table(TableName=table)
    for bucket in [*buckets, deployment.code_bucket]:
        try:
            objects = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
        except s3.exceptions.NoSuchBucket:
            continue
        for item in objects:
            s3.delete_object(Bucket=bucket, Key=item["Key"])
        s3.delete_bucket(Bucket=bucket)


@pytest.fixture(scope="module", params=list(KafkaMode), ids=[mode.value for mode in KafkaMode])
def deployment(request: pytest.FixtureRequest, moto_endpoint: str) -> Iterator[Deployment]:
    kafka: KafkaMode = request.param
    # Resource names come from the prefix: a prefix of its own keeps this stack off the session's other tables.
    prefix = f"lfdeploy{secrets.token_hex(3)}"
    config = DeployConfig(prefix=prefix, kafka=kafka)
    (template,) = synthesize(config).values()
    subset, dropped = deployable_subset(template, MOTO_UNSUPPORTED)
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        aws_endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # type: ignore[arg-type]
    )
    services = ("cloudformation", "dynamodb", "sqs", "s3", "lambda", "events")
    clients = {service: boto3.client(service, **client_kwargs(settings, service)) for service in services}
    code_bucket = f"{prefix}-code"
    clients["s3"].create_bucket(Bucket=code_bucket)
    clients["s3"].put_object(Bucket=code_bucket, Key="lambda.zip", Body=placeholder_code_zip())
    stack_name = f"{prefix}-stack"
    result = Deployment(config, stack_name, template, subset, dropped, clients, code_bucket)
    clients["cloudformation"].create_stack(
        StackName=stack_name,
        TemplateBody=json.dumps(subset),
        Parameters=local_parameters(
            subset, {catalog.CODE_BUCKET_PARAMETER: code_bucket, catalog.CODE_KEY_PARAMETER: "lambda.zip"}
        ),
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
    )
    try:
        yield result
    finally:
        if not result.deleted:
            result.delete()
        remove_retained(result)


def test_stack_creates(deployment: Deployment) -> None:
    stack = wait_for_stack(deployment.client("cloudformation"), deployment.stack_name, STACK_DEADLINE_S)
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    physical = deployment.physical_ids()
    assert set(physical) == set(deployment.subset["Resources"])


def test_what_moto_cannot_create_is_stated(deployment: Deployment) -> None:
    assert set(deployment.dropped) == DROPPED_BY_MODE[deployment.config.kafka], deployment.dropped


def test_tables_and_indexes_match_the_resources(deployment: Deployment) -> None:
    dynamodb = deployment.client("dynamodb")
    for spec in deployment.config.resources.tables:
        table = dynamodb.describe_table(TableName=spec.name)["Table"]
        expected = spec.create_kwargs()
        assert table["KeySchema"] == expected["KeySchema"], spec.name
        assert sorted(table["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == sorted(
            expected["AttributeDefinitions"], key=lambda a: a["AttributeName"]
        )
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        indexes = {index["IndexName"]: index["KeySchema"] for index in table.get("GlobalSecondaryIndexes", [])}
        assert indexes == {gsi["IndexName"]: gsi["KeySchema"] for gsi in expected.get("GlobalSecondaryIndexes", [])}


def test_queue_and_dead_letter_queue(deployment: Deployment) -> None:
    sqs = deployment.client("sqs")
    (spec,) = deployment.config.resources.queues
    dlq_url = sqs.get_queue_url(QueueName=spec.dead_letter_name)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.get_queue_url(QueueName=spec.name)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": spec.max_receive_count,
    }
    assert int(attributes["VisibilityTimeout"]) >= 6 * catalog.S3_EVENTS.timeout_s


def test_s3_events_function_reads_the_queue(deployment: Deployment) -> None:
    """The S3-events function's SQS event source: its batch size and partial batch responses, as created."""
    mappings = deployment.of_type("AWS::Lambda::EventSourceMapping")
    if deployment.config.kafka not in PROVES_FUNCTIONS:
        assert not mappings  # they went with their functions (see MSK_DROPPED)
        return
    physical = deployment.physical_ids()
    lambda_ = deployment.client("lambda")
    function_arn = lambda_.get_function(FunctionName=physical[catalog.S3_EVENTS.logical_id])["Configuration"][
        "FunctionArn"
    ]
    sqs = deployment.client("sqs")
    queue_url = sqs.get_queue_url(QueueName=deployment.config.resources.queues[0].name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    (mapping,) = lambda_.list_event_source_mappings(EventSourceArn=queue_arn)["EventSourceMappings"]
    expected = next(
        r["Properties"]
        for r in mappings.values()
        if r["Properties"]["FunctionName"] == {"Ref": catalog.S3_EVENTS.logical_id}
    )
    assert mapping["FunctionArn"] == function_arn
    assert mapping["BatchSize"] == expected["BatchSize"]
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_bucket_exists(deployment: Deployment) -> None:
    deployment.client("s3").head_bucket(Bucket=deployment.config.resources.bucket)


def test_schedules_exist(deployment: Deployment) -> None:
    """Every EventBridge rule of the template exists with its schedule and targets a function of the stack; the
    webhook retry sweep and the reconciler are among them."""
    events = deployment.client("events")
    physical = deployment.physical_ids()
    rules = deployment.of_type("AWS::Events::Rule")
    if deployment.config.kafka not in PROVES_FUNCTIONS:
        assert not rules  # they went with their functions (see MSK_DROPPED)
        return
    function_arns = {
        deployment.client("lambda").get_function(FunctionName=physical[lid])["Configuration"]["FunctionArn"]: lid
        for lid in deployment.of_type("AWS::Lambda::Function")
    }
    targeted = set()
    for logical_id, rule in rules.items():
        name = physical[logical_id].split("|")[0]
        described = events.describe_rule(Name=name)
        assert described["ScheduleExpression"] == rule["Properties"]["ScheduleExpression"]
        assert described["State"] == rule["Properties"].get("State", "ENABLED")
        for target in events.list_targets_by_rule(Rule=name)["Targets"]:
            assert target["Arn"] in function_arns, target
            targeted.add(function_arns[target["Arn"]])
    assert {catalog.WEBHOOKS.logical_id, catalog.RECONCILER.logical_id} <= targeted


def test_functions_name_the_catalog_handlers(deployment: Deployment) -> None:
    physical = deployment.physical_ids()
    lambda_ = deployment.client("lambda")
    created = {}
    for spec in catalog.FUNCTIONS:
        if spec.logical_id in physical:
            configuration = lambda_.get_function(FunctionName=physical[spec.logical_id])["Configuration"]
            created[spec.logical_id] = configuration["Handler"]
    assert created == {
        spec.logical_id: spec.handler for spec in catalog.FUNCTIONS if spec.logical_id in deployment.subset["Resources"]
    }
    # Every function of the template is one of the catalog's, and moto created them all.
    assert set(deployment.of_type("AWS::Lambda::Function")) == set(created)
    if deployment.config.kafka in PROVES_FUNCTIONS:
        assert set(created) == {spec.logical_id for spec in catalog.FUNCTIONS}


def test_teardown_keeps_the_data(deployment: Deployment) -> None:
    """Deleting the stack deletes the queues and keeps the tables and the bucket (DeletionPolicy Retain)."""
    deployment.delete()
    stacks = deployment.client("cloudformation").list_stacks()["StackSummaries"]
    assert all(s["StackStatus"] == "DELETE_COMPLETE" for s in stacks if s["StackName"] == deployment.stack_name)
    tables, buckets = retained_data(deployment)
    assert set(tables) == {spec.name for spec in deployment.config.resources.tables}
    assert set(tables) <= set(deployment.client("dynamodb").list_tables()["TableNames"])
    for bucket in buckets:
        deployment.client("s3").head_bucket(Bucket=bucket)
    queues = deployment.client("sqs").list_queues(QueueNamePrefix=deployment.config.prefix).get("QueueUrls", [])
    assert queues == []
