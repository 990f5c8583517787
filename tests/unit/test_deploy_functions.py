"""The functions part of the template, read as data: every catalog function with its handler, its own role
granting only what its code uses, the HTTP API's limits, the event sources' partial batch responses, the
schedules and the topics' custom resource. (cfn-lint checks the same template against AWS's schemas in
test_deploy_lint.py; the local deployment test creates what moto can.)"""

from __future__ import annotations

import re
from typing import Any

import pytest

from events.storage_keys import (
    AdapterFormat,
    adapter_export_key,
    adapter_import_key,
    training_adapter_key,
    training_epoch_keys,
)
from events.topics import JOB_LIFECYCLE
from infra.deploy import catalog
from infra.deploy.config import DeployConfig, KafkaMode
from infra.deploy.functions import (
    API_INTEGRATION_TIMEOUT_MS,
    GRANTS,
    HTTP_API,
    HTTP_API_INTEGRATION,
    HTTP_API_STAGE,
    KAFKA_TOPICS,
    LAMBDA_MAX_BODY_BYTES,
    LOG_RETENTION_DAYS,
    functions_fragment,
    log_group_logical_id,
    role_logical_id,
    schedule_logical_id,
)
from infra.deploy.kafka_cluster import kafka_client_environment
from infra.deploy.template import synthesize

PREFIX = "lfunit"


@pytest.fixture(scope="module", params=list(KafkaMode), ids=[mode.value for mode in KafkaMode])
def config(request: pytest.FixtureRequest) -> DeployConfig:
    return DeployConfig(prefix=PREFIX, kafka=request.param)


@pytest.fixture(scope="module")
def template(config: DeployConfig) -> dict[str, Any]:
    (template,) = synthesize(config).values()
    return template


def resources_of(template: dict[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {lid: r for lid, r in template["Resources"].items() if r["Type"] == resource_type}


def statements_of(template: dict[str, Any], spec: catalog.FunctionSpec) -> list[dict[str, Any]]:
    """The role's statements, each Action as a list (IAM takes a single action as a string too)."""
    role = template["Resources"][role_logical_id(spec)]["Properties"]
    statements = [s for policy in role.get("Policies", []) for s in policy["PolicyDocument"]["Statement"]]
    return [{**s, "Action": [s["Action"]] if isinstance(s["Action"], str) else s["Action"]} for s in statements]


def actions_of(statements: list[dict[str, Any]]) -> set[str]:
    return {action for s in statements for action in s["Action"]}


def grants_on(statements: list[dict[str, Any]], logical_id: str) -> set[str]:
    """The actions granted on a resource named by `logical_id` (Fn::GetAtt or Fn::Sub of it)."""
    found: set[str] = set()
    for s in statements:
        resources = s["Resource"] if isinstance(s["Resource"], list) else [s["Resource"]]
        if any(logical_id in str(resource) for resource in resources):
            found |= set(s["Action"])
    return found


def table_id(config: DeployConfig, table_property: str) -> str:
    return catalog.table_logical_id(getattr(config.settings, table_property), config.prefix)


def test_every_catalog_function_is_deployed_with_its_handler(template: dict[str, Any]) -> None:
    functions = resources_of(template, "AWS::Lambda::Function")
    assert set(functions) == {spec.logical_id for spec in catalog.FUNCTIONS}
    roles = set()
    for spec in catalog.FUNCTIONS:
        properties = functions[spec.logical_id]["Properties"]
        assert properties["Handler"] == spec.handler
        assert (properties["Runtime"], properties["Architectures"]) == ("python3.12", ["x86_64"])
        assert (properties["MemorySize"], properties["Timeout"]) == (spec.memory_mb, spec.timeout_s)
        assert properties["Code"] == {"S3Bucket": {"Ref": "CodeBucket"}, "S3Key": {"Ref": "CodeKey"}}
        assert properties["FunctionName"] == f"{PREFIX}-{spec.name}"
        # MSK is only reachable inside the VPC.
        assert properties["VpcConfig"]["SubnetIds"] == [{"Ref": s} for s in catalog.PRIVATE_SUBNETS]
        assert properties["VpcConfig"]["SecurityGroupIds"] == [
            {"Fn::GetAtt": [catalog.FUNCTIONS_SECURITY_GROUP, "GroupId"]}
        ]
        log_group = template["Resources"][log_group_logical_id(spec)]["Properties"]
        assert log_group == {"LogGroupName": f"/aws/lambda/{PREFIX}-{spec.name}", "RetentionInDays": LOG_RETENTION_DAYS}
        assert properties["LoggingConfig"]["LogGroup"] == {"Ref": log_group_logical_id(spec)}
        roles.add(properties["Role"]["Fn::GetAtt"][0])
    assert roles == {role_logical_id(spec) for spec in catalog.FUNCTIONS}  # one role each


def test_every_function_gets_the_resource_prefix_region_and_brokers(config, template) -> None:
    kafka = kafka_client_environment(config)
    for spec in catalog.FUNCTIONS:
        variables = template["Resources"][spec.logical_id]["Properties"]["Environment"]["Variables"]
        assert variables["LF_RESOURCE_PREFIX"] == PREFIX
        assert variables["LF_AWS_REGION"] == {"Ref": "AWS::Region"}
        assert {name: variables[name] for name in kafka} == kafka
        assert "LF_KAFKA_PARTITIONS" in variables and "LF_KAFKA_REPLICATION_FACTOR" in variables


def test_every_role_is_the_lambda_vpc_role_plus_its_own_grants(template: dict[str, Any]) -> None:
    assert set(GRANTS) == {spec.name for spec in catalog.FUNCTIONS}
    for spec in catalog.FUNCTIONS:
        role = template["Resources"][role_logical_id(spec)]["Properties"]
        assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
        assert role["ManagedPolicyArns"] == [
            {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"}
        ]
        for s in statements_of(template, spec):
            assert not any(action.endswith(":*") or action == "*" for action in s["Action"]), (spec.name, s)


def test_resource_wildcards_only_where_iam_has_no_resource(template: dict[str, Any]) -> None:
    # Actions without resource-level permissions; KMS only through Secrets Manager (a bring-your-own secret's
    # key is unknown at synth time); PutMetricData only under its namespace condition.
    allowed = {"ec2:DescribeVpcs", "ec2:DescribeSecurityGroups", "cloudwatch:PutMetricData", "kms:Decrypt"}
    for spec in catalog.FUNCTIONS:
        for s in statements_of(template, spec):
            if s["Resource"] == "*":
                assert set(s["Action"]) <= allowed, (spec.name, s)
                assert s["Action"] != ["cloudwatch:PutMetricData"] or s["Condition"]
                assert s["Action"] != ["kms:Decrypt"] or "kms:ViaService" in s["Condition"]["StringEquals"]


def test_the_api_role_reads_keys_and_never_touches_the_queue(config, template) -> None:
    statements = statements_of(template, catalog.API)
    assert not any(a.startswith("sqs:") or a.startswith("cloudwatch:") for a in actions_of(statements))
    # Looked up per request; issued, listed, revoked and rotated by the operator API.
    assert grants_on(statements, table_id(config, "api_keys_table")) == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Scan",
    }
    # Signatures used once, and the per-key request windows (a conditional ADD).
    assert grants_on(statements, table_id(config, "nonces_table")) == {"dynamodb:PutItem", "dynamodb:UpdateItem"}
    # Live workers are only read (listed by `lorafoundry status`); the workers write their own records.
    assert grants_on(statements, table_id(config, "workers_table")) == {"dynamodb:Scan"}
    assert "dynamodb:DeleteItem" not in grants_on(statements, table_id(config, "jobs_table"))
    # Query on a table reaches its indexes (the jobs' byTenant, byModel...) too.
    jobs = next(s for s in statements if "dynamodb:Query" in s["Action"] and "JobsTable" in str(s["Resource"]))
    assert {"Fn::Sub": "${JobsTable.Arn}/index/*"} in jobs["Resource"]
    # Presigned URLs are signed with the role: it must hold what they allow.
    assert {"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"} <= actions_of(statements)


def test_the_reconciler_writes_only_failure_markers(template: dict[str, Any]) -> None:
    statements = statements_of(template, catalog.RECONCILER)
    s3 = [s for s in statements if any(a.startswith("s3:") for a in s["Action"])]
    assert [s["Action"] for s in s3] == [["s3:PutObject"]]
    assert s3[0]["Resource"] == [
        {"Fn::Sub": "${ArtifactsBucket.Arn}/jobs/*/failed.json"},
        {"Fn::Sub": "${ArtifactsBucket.Arn}/trainings/*/failed.json"},
    ]
    tables = {t for s in statements for t in str(s["Resource"]).split("'") if t.endswith("Table")}
    assert tables == {"JobsTable"}


def test_only_the_s3_events_function_consumes_the_queue(template: dict[str, Any]) -> None:
    for spec in catalog.FUNCTIONS:
        statements = statements_of(template, spec)
        sqs = {a for a in actions_of(statements) if a.startswith("sqs:")}
        if spec is catalog.S3_EVENTS:
            assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"} <= sqs
            assert grants_on(statements, catalog.NOTIFICATIONS_QUEUE) == sqs
            assert not grants_on(statements, catalog.NOTIFICATIONS_DLQ)
        else:
            assert not sqs, spec.name


def test_lag_metrics_and_bootstrap_reach_no_storage(template: dict[str, Any]) -> None:
    for spec in (catalog.LAG_METRICS, catalog.BOOTSTRAP):
        actions = actions_of(statements_of(template, spec))
        assert not any(a.startswith(("dynamodb:", "s3:", "sqs:")) for a in actions), spec.name
    (metric,) = [s for s in statements_of(template, catalog.LAG_METRICS) if "cloudwatch:PutMetricData" in s["Action"]]
    assert metric["Condition"] == {"StringEquals": {"cloudwatch:namespace": "LoRAFoundry"}}
    assert "cloudwatch:PutMetricData" not in actions_of(statements_of(template, catalog.BOOTSTRAP))


def test_granted_tables_exist_in_the_template(config, template) -> None:
    tables = set(resources_of(template, "AWS::DynamoDB::Table"))
    for grants in GRANTS.values():
        assert {table_id(config, name) for name in grants.tables} <= tables


def test_the_http_api_states_its_limits(template: dict[str, Any]) -> None:
    resources = template["Resources"]
    assert resources[HTTP_API]["Properties"]["ProtocolType"] == "HTTP"
    integration = resources[HTTP_API_INTEGRATION]["Properties"]
    assert (integration["IntegrationType"], integration["PayloadFormatVersion"]) == ("AWS_PROXY", "2.0")
    assert integration["TimeoutInMillis"] == API_INTEGRATION_TIMEOUT_MS <= 30_000
    assert integration["IntegrationUri"] == {"Fn::GetAtt": [catalog.API.logical_id, "Arn"]}
    # The function gives up before API Gateway does, so a slow request ends with the API's own answer.
    assert resources[catalog.API.logical_id]["Properties"]["Timeout"] * 1000 <= API_INTEGRATION_TIMEOUT_MS
    (route,) = resources_of(template, "AWS::ApiGatewayV2::Route").values()
    assert route["Properties"]["RouteKey"] == "$default"
    stage = resources[HTTP_API_STAGE]["Properties"]
    assert (stage["StageName"], stage["AutoDeploy"]) == ("$default", True)
    assert set(stage["DefaultRouteSettings"]) == {"ThrottlingRateLimit", "ThrottlingBurstLimit"}
    assert stage["AccessLogSettings"]["DestinationArn"]
    permissions = [
        p["Properties"]
        for p in resources_of(template, "AWS::Lambda::Permission").values()
        if p["Properties"]["Principal"] == "apigateway.amazonaws.com"
    ]
    assert [p["FunctionName"] for p in permissions] == [{"Ref": catalog.API.logical_id}]
    assert template["Outputs"]["ApiUrl"]["Value"] == {"Fn::GetAtt": [HTTP_API, "ApiEndpoint"]}


def test_the_api_refuses_a_body_lambda_cannot_carry(template: dict[str, Any]) -> None:
    # 6 MB of event for a synchronous invocation, binary bodies base64-encoded in it.
    assert LAMBDA_MAX_BODY_BYTES * 4 / 3 < 6 * 1024 * 1024
    variables = template["Resources"][catalog.API.logical_id]["Properties"]["Environment"]["Variables"]
    for name in ("LF_MAX_REQUEST_BYTES", "LF_MAX_IMAGE_BYTES", "LF_MAX_TRAINING_UPLOAD_BYTES", "LF_MAX_ADAPTER_BYTES"):
        assert 0 < int(variables[name]) <= LAMBDA_MAX_BODY_BYTES, name


def test_the_queue_source_reports_batch_item_failures(template: dict[str, Any]) -> None:
    mappings = resources_of(template, "AWS::Lambda::EventSourceMapping")
    (sqs,) = [m["Properties"] for m in mappings.values() if "Queue" in str(m["Properties"].get("EventSourceArn"))]
    assert sqs["EventSourceArn"] == {"Fn::GetAtt": [catalog.NOTIFICATIONS_QUEUE, "Arn"]}
    assert sqs["FunctionName"] == {"Ref": catalog.S3_EVENTS.logical_id}
    assert sqs["BatchSize"] == 10 and sqs["MaximumBatchingWindowInSeconds"] >= 1
    assert sqs["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert sqs["ScalingConfig"]["MaximumConcurrency"] >= 2


def test_the_lifecycle_sources_have_their_own_groups_and_partial_batch_responses(config, template) -> None:
    mappings = resources_of(template, "AWS::Lambda::EventSourceMapping")
    kafka = {
        m["Properties"]["FunctionName"]["Ref"]: m["Properties"]
        for m in mappings.values()
        if "Topics" in m["Properties"]
    }
    settings = config.settings
    expected = {
        catalog.WEBHOOKS.logical_id: settings.kafka_webhooks_consumer_group,
        catalog.PORTRAITS.logical_id: settings.kafka_portraits_consumer_group,
    }
    assert set(kafka) == set(expected)
    for function, group in expected.items():
        properties = kafka[function]
        assert properties["Topics"] == [JOB_LIFECYCLE]
        source_config = properties.get("AmazonManagedKafkaEventSourceConfig") or properties.get(
            "SelfManagedKafkaEventSourceConfig"
        )
        assert source_config == {"ConsumerGroupId": group}
        assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        # Lambda takes partial batch responses from a Kafka source only in provisioned mode.
        assert properties["ProvisionedPollerConfig"]["MinimumPollers"] >= 1
        assert properties["StartingPosition"] == "TRIM_HORIZON"
        assert properties["BatchSize"] >= 1


def test_the_schedules_run_every_minute_with_permission(config, template) -> None:
    rules = resources_of(template, "AWS::Events::Rule")
    targeted = {}
    for logical_id, rule in rules.items():
        properties = rule["Properties"]
        assert (properties["ScheduleExpression"], properties["State"]) == ("rate(1 minute)", "ENABLED")
        (target,) = properties["Targets"]
        # No Input: the webhooks function tells its sweep by EventBridge's own scheduled event.
        assert "Input" not in target
        targeted[target["Arn"]["Fn::GetAtt"][0]] = logical_id
    scheduled = (catalog.WEBHOOKS, catalog.RECONCILER, catalog.LAG_METRICS)
    assert targeted == {spec.logical_id: schedule_logical_id(spec) for spec in scheduled}
    permissions = [p["Properties"] for p in resources_of(template, "AWS::Lambda::Permission").values()]
    for spec in scheduled:
        assert {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Ref": spec.logical_id},
            "Principal": "events.amazonaws.com",
            "SourceArn": {"Fn::GetAtt": [schedule_logical_id(spec), "Arn"]},
        } in permissions


def test_the_webhooks_function_reads_eventbridge_s_event_as_its_sweep() -> None:
    from functions.webhooks.handler import is_scheduled_event

    # The event EventBridge sends a scheduled rule's target (no Input configured).
    event = {
        "version": "0",
        "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "123456789012",
        "time": "2026-12-01T16:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:events:us-east-1:123456789012:rule/lfunit-webhooks-every-minute"],
        "detail": {},
    }
    assert is_scheduled_event(event)


def test_the_topics_resource_reruns_when_the_topics_change(config, template) -> None:
    topics = template["Resources"][KAFKA_TOPICS]
    assert topics["Type"] == "Custom::KafkaTopics"
    assert topics["Properties"]["ServiceToken"] == {"Fn::GetAtt": [catalog.BOOTSTRAP.logical_id, "Arn"]}
    assert topics["Properties"]["ServiceTimeout"] > catalog.BOOTSTRAP.timeout_s
    assert set(topics["DependsOn"]) <= set(template["Resources"])
    more_partitions = DeployConfig(prefix=PREFIX, kafka=config.kafka, kafka_partitions=config.kafka_partitions + 6)
    changed = functions_fragment(more_partitions).resources[KAFKA_TOPICS]["Properties"]["Topics"]
    assert changed != topics["Properties"]["Topics"]
    assert len(changed) == len(config.resources.topics)


def _iam_matches(pattern: str, key: str) -> bool:
    """An S3 resource pattern as IAM reads it: `*` is any run of characters, `/` included."""
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), key) is not None


def test_the_api_writes_kohya_downloads_beside_trained_adapters_and_nothing_else_of_a_training() -> None:
    writable = [p for p, actions in GRANTS[catalog.API.name].objects.items() if "s3:PutObject" in actions]
    final, epoch = training_adapter_key("trn_1"), training_epoch_keys("trn_1", "000002")[0]
    for source in (final, epoch):
        export = adapter_export_key(source, AdapterFormat.KOHYA)
        assert any(_iam_matches(p, export) for p in writable), export
        # The trainer's own files (its adapters, resume state, markers) are not the API's to write.
        assert not any(_iam_matches(p, source) for p in writable), source
    assert not any(_iam_matches(p, training_epoch_keys("trn_1", "000002")[1]) for p in writable)
    imported = adapter_import_key("mdl_1", "imp_ab12", "cd" * 32)
    assert any(_iam_matches(p, adapter_export_key(imported, AdapterFormat.KOHYA)) for p in writable)
