"""The synthesized CloudFormation template against `infra/resources.py` (the list the bootstrap applies): every
table with its keys, indexes and TTL, the queue and its DLQ, the bucket's notifications and lifecycle; synthesis
is deterministic and offline; the local-deployment subset drops what a local CloudFormation cannot create."""

from __future__ import annotations

import configparser
import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.deploy import catalog
from infra.deploy.cfn import DuplicateLogicalId, Fragment, ref, sub
from infra.deploy.config import DeployConfig, KafkaMode
from infra.deploy.local_deploy import (
    LOCALSTACK_UNSUPPORTED,
    MOTO_UNSUPPORTED,
    deployable_subset,
    local_parameters,
    unsupported_reason,
)
from infra.deploy.storage import QUEUE_POLICY, queue_visibility_timeout
from infra.deploy.template import render, synthesize, template_file_name, write_templates
from infra.resources import Resources

PREFIX = "lfunit"
CLI = Path(sys.executable).with_name("lorafoundry")
ROOT = Path(__file__).resolve().parents[2]
LOCALSTACK_VENV = ROOT / ".localstack-venv"  # `make test-localstack` installs it (infra/localstack/install.sh)


@pytest.fixture(scope="module")
def config() -> DeployConfig:
    return DeployConfig(prefix=PREFIX)


@pytest.fixture(scope="module")
def resources(config: DeployConfig) -> Resources:
    return config.resources


@pytest.fixture(scope="module")
def template(config: DeployConfig) -> dict:
    return synthesize(config)[template_file_name(config)]


def resource(template: dict, logical_id: str) -> dict:
    return template["Resources"][logical_id]


def test_every_table_matches_its_spec(template: dict, resources: Resources) -> None:
    tables = {lid: r for lid, r in template["Resources"].items() if r["Type"] == "AWS::DynamoDB::Table"}
    assert set(tables) == {catalog.table_logical_id(spec.name, PREFIX) for spec in resources.tables}
    for spec in resources.tables:
        table = tables[catalog.table_logical_id(spec.name, PREFIX)]
        properties = table["Properties"]
        expected = spec.create_kwargs()
        assert properties["TableName"] == spec.name
        assert properties["KeySchema"] == expected["KeySchema"]
        assert properties["AttributeDefinitions"] == expected["AttributeDefinitions"]
        assert properties["BillingMode"] == "PAY_PER_REQUEST"
        indexes = {gsi["IndexName"]: gsi for gsi in properties.get("GlobalSecondaryIndexes", [])}
        assert set(indexes) == {name for name, _, _ in spec.indexes}, spec.name
        for name, hash_key, range_key in spec.indexes:
            assert indexes[name]["KeySchema"] == [
                {"AttributeName": hash_key, "KeyType": "HASH"},
                {"AttributeName": range_key, "KeyType": "RANGE"},
            ]
            assert indexes[name]["Projection"] == {"ProjectionType": "ALL"}
        if spec.ttl_attribute:
            assert properties["TimeToLiveSpecification"] == {"AttributeName": spec.ttl_attribute, "Enabled": True}
        else:
            assert "TimeToLiveSpecification" not in properties
        assert properties["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert properties["SSESpecification"] == {"SSEEnabled": True}
        assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("Retain", "Retain")


def test_queue_and_dead_letter_queue(template: dict, resources: Resources) -> None:
    (spec,) = resources.queues
    queue = resource(template, catalog.NOTIFICATIONS_QUEUE)["Properties"]
    dlq = resource(template, catalog.NOTIFICATIONS_DLQ)["Properties"]
    assert queue["QueueName"] == spec.name
    assert dlq["QueueName"] == spec.dead_letter_name
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [catalog.NOTIFICATIONS_DLQ, "Arn"]},
        "maxReceiveCount": spec.max_receive_count,
    }
    assert queue["SqsManagedSseEnabled"] and dlq["SqsManagedSseEnabled"]
    # A dead letter must outlive the message's original retention (4 days by default).
    assert dlq["MessageRetentionPeriod"] > 4 * 24 * 3600


def test_queue_visibility_covers_the_s3_events_function(template: dict, resources: Resources) -> None:
    """Lambda refuses an SQS source whose visibility timeout is below the function's timeout; AWS advises 6x."""
    (spec,) = resources.queues
    visibility = resource(template, catalog.NOTIFICATIONS_QUEUE)["Properties"]["VisibilityTimeout"]
    assert visibility == queue_visibility_timeout(spec) >= 6 * catalog.S3_EVENTS.timeout_s
    assert visibility >= spec.visibility_timeout
    function = template["Resources"].get(catalog.S3_EVENTS.logical_id)
    if function:  # the functions part is another module's; when it is there, its timeout is what counts
        assert visibility >= 6 * function["Properties"]["Timeout"]


def test_bucket_notifications_match_the_resources(template: dict, resources: Resources) -> None:
    bucket = resource(template, catalog.BUCKET)
    configurations = bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    seen = set()
    for configuration in configurations:
        rules = {rule["Name"]: rule["Value"] for rule in configuration["Filter"]["S3Key"]["Rules"]}
        assert configuration["Event"] == "s3:ObjectCreated:*"
        seen.add((configuration["Queue"]["Fn::GetAtt"][0], rules["prefix"], rules["suffix"]))
    assert seen == {(catalog.NOTIFICATIONS_QUEUE, n.prefix, n.suffix) for n in resources.notifications}
    assert len(configurations) == len(resources.notifications)
    # S3 checks that it may send to the queue when the notification is set: the policy must exist first.
    assert QUEUE_POLICY in bucket["DependsOn"]


def test_queue_policy_lets_only_this_bucket_send(template: dict, resources: Resources) -> None:
    policy = resource(template, QUEUE_POLICY)["Properties"]
    assert policy["Queues"] == [ref(catalog.NOTIFICATIONS_QUEUE)]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Action"] == ["sqs:SendMessage"]
    assert statement["Condition"]["ArnLike"]["aws:SourceArn"] == sub(f"arn:${{AWS::Partition}}:s3:::{resources.bucket}")
    assert statement["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


def test_bucket_lifecycle_and_protection(template: dict, resources: Resources) -> None:
    bucket = resource(template, catalog.BUCKET)
    properties = bucket["Properties"]
    assert properties["BucketName"] == resources.bucket
    rules = properties["LifecycleConfiguration"]["Rules"]
    expirations = {(rule["Prefix"], rule["ExpirationInDays"]) for rule in rules if "ExpirationInDays" in rule}
    assert expirations == set(resources.expirations) and expirations
    assert any("AbortIncompleteMultipartUpload" in rule for rule in rules)
    assert all(rule["Status"] == "Enabled" for rule in rules)
    assert set(properties["PublicAccessBlockConfiguration"].values()) == {True}
    assert properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert (bucket["DeletionPolicy"], bucket["UpdateReplacePolicy"]) == ("Retain", "Retain")
    (tls_only,) = resource(template, "ArtifactsBucketPolicy")["Properties"]["PolicyDocument"]["Statement"]
    assert tls_only["Effect"] == "Deny" and tls_only["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_outputs_name_the_storage(template: dict, resources: Resources) -> None:
    outputs = template["Outputs"]
    assert outputs["BucketName"]["Value"] == ref(catalog.BUCKET)
    assert outputs["NotificationsQueueUrl"]["Value"] == ref(catalog.NOTIFICATIONS_QUEUE)
    for spec in resources.tables:
        logical_id = catalog.table_logical_id(spec.name, PREFIX)
        assert outputs[f"{logical_id}Name"]["Value"] == ref(logical_id)


def test_the_prefix_names_every_resource() -> None:
    (template,) = synthesize(DeployConfig(prefix="other")).values()
    names = [r["Properties"]["TableName"] for r in template["Resources"].values() if r["Type"].endswith("::Table")]
    assert names and all(name.startswith("other-") for name in names)


def test_synthesis_is_deterministic(config: DeployConfig, template: dict) -> None:
    assert render(synthesize(config)[template_file_name(config)]) == render(template)


def test_synth_command_offline_with_an_empty_environment(tmp_path: Path) -> None:
    """The command as a user runs it, with no AWS credentials, region or config, under a hash seed other than
    this process's (a set iterated into the template would show as a difference): the same bytes as here."""
    out = tmp_path / "out"
    seed = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"
    done = subprocess.run(
        [str(CLI), "deploy", "synth", "--out", str(out), "--prefix", PREFIX, "--kafka", "msk-provisioned"],
        env={"PYTHONHASHSEED": seed, "HOME": str(tmp_path), "AWS_CONFIG_FILE": "/nonexistent"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    written = out / f"{PREFIX}.template.json"
    assert done.stdout.strip() == str(written)
    (template,) = synthesize(DeployConfig(prefix=PREFIX, kafka=KafkaMode.MSK_PROVISIONED)).values()
    assert written.read_bytes() == render(template).encode()


def test_write_templates_creates_the_folder(tmp_path: Path, config: DeployConfig) -> None:
    (path,) = write_templates(config, tmp_path / "a" / "b")
    assert path == tmp_path / "a" / "b" / f"{PREFIX}.template.json"
    assert path.read_text(encoding="utf-8").endswith("}\n")


def test_fragment_refuses_duplicate_ids() -> None:
    fragment = Fragment()
    fragment.add("Thing", "AWS::SQS::Queue")
    with pytest.raises(DuplicateLogicalId):
        fragment.add("Thing", "AWS::SQS::Queue")
    other = Fragment()
    other.add("Thing", "AWS::SNS::Topic")
    with pytest.raises(DuplicateLogicalId):
        Fragment().merge(fragment).merge(other)
    fragment.parameter("Size", "a size")
    fragment.parameter("Size", "a size")  # the same definition twice is one parameter
    with pytest.raises(DuplicateLogicalId):
        fragment.parameter("Size", "another size")


# The local deployment's subset, on a template small enough to read.
SMALL = {
    "Parameters": {
        "ClusterSize": {"Type": "Number", "MinValue": 3},
        "CodeBucket": {"Type": "String"},
        "Subnets": {"Type": "List<AWS::EC2::Subnet::Id>"},
        "Unused": {"Type": "String", "Default": "x"},
    },
    "Conditions": {"Big": {"Fn::Equals": [{"Ref": "ClusterSize"}, 9]}, "Other": {"Fn::Equals": ["a", "b"]}},
    "Resources": {
        "Cluster": {"Type": "AWS::MSK::Cluster", "Properties": {"NumberOfBrokerNodes": {"Ref": "ClusterSize"}}},
        "Reader": {"Type": "AWS::IAM::Role", "Properties": {"Arn": {"Fn::GetAtt": ["Cluster", "Arn"]}}},
        "ReaderUser": {"Type": "AWS::IAM::Policy", "Properties": {"Roles": [{"Ref": "Reader"}]}},
        "Text": {"Type": "AWS::SSM::Parameter", "Properties": {"Value": {"Fn::Sub": "${Cluster.Arn}/x"}}},
        "Literal": {
            "Type": "AWS::SSM::Parameter",
            "Properties": {"Value": {"Fn::Sub": ["${!Cluster} ${Cluster} ${AWS::Region}", {"Cluster": "c"}]}},
        },
        "Queue": {"Type": "AWS::SQS::Queue", "DependsOn": ["Cluster", "Literal"]},
        "Function": {
            "Type": "AWS::Lambda::Function",
            "Properties": {"Code": {"S3Bucket": {"Ref": "CodeBucket"}}, "Vpc": {"Ref": "Subnets"}},
        },
        "Mapping": {
            "Type": "AWS::Lambda::EventSourceMapping",
            "Properties": {"SelfManagedEventSource": {}, "FunctionName": {"Ref": "Function"}},
        },
        "SqsMapping": {
            "Type": "AWS::Lambda::EventSourceMapping",
            "Properties": {"EventSourceArn": {"Fn::GetAtt": ["Queue", "Arn"]}, "FunctionName": {"Ref": "Function"}},
        },
        "Custom": {"Type": "Custom::Topics", "Properties": {"ServiceToken": {"Fn::GetAtt": ["Function", "Arn"]}}},
    },
    "Outputs": {
        "ClusterArn": {"Value": {"Ref": "Cluster"}},
        "QueueUrl": {"Value": {"Ref": "Queue"}},
        "Size": {"Value": {"Fn::If": ["Big", "big", "small"]}},
    },
}


def test_subset_drops_unsupported_types_and_what_refers_to_them() -> None:
    subset, dropped = deployable_subset(SMALL, MOTO_UNSUPPORTED)
    assert set(dropped) == {"Cluster", "Reader", "ReaderUser", "Text", "Mapping", "Custom"}
    assert dropped["Reader"] == "refers to Cluster"
    assert dropped["ReaderUser"] == "refers to Reader"
    assert "SelfManagedEventSource" in dropped["Mapping"]
    assert set(subset["Resources"]) == {"Literal", "Queue", "Function", "SqsMapping"}
    # Ordering only: the dropped dependency goes, the dependent stays.
    assert subset["Resources"]["Queue"]["DependsOn"] == ["Literal"]
    assert set(subset["Outputs"]) == {"QueueUrl", "Size"}
    assert set(subset["Conditions"]) == {"Big"}
    assert set(subset["Parameters"]) == {"ClusterSize", "CodeBucket", "Subnets"}
    assert "Cluster" in SMALL["Resources"]  # the input is left as it was


def test_local_parameters_fill_what_has_no_default() -> None:
    subset, _ = deployable_subset(SMALL, MOTO_UNSUPPORTED)
    parameters = local_parameters(subset, {"CodeBucket": "code", "NotThere": "ignored"})
    assert parameters == [
        {"ParameterKey": "ClusterSize", "ParameterValue": "3"},
        {"ParameterKey": "CodeBucket", "ParameterValue": "code"},
        {"ParameterKey": "Subnets", "ParameterValue": "subnet-0123456789abcdef0"},
    ]
    with pytest.raises(ValueError, match="Tag"):
        local_parameters({"Parameters": {"Tag": {"Type": "String", "AllowedPattern": "[0-9]+"}}})


@functools.cache
def types_of_every_template() -> frozenset[str]:
    """The resource types of every synthesized template (each Kafka mode, scale to zero or not)."""
    used = set()
    for kafka in KafkaMode:
        for scale_to_zero in (True, False):
            (template,) = synthesize(DeployConfig(prefix=PREFIX, kafka=kafka, scale_to_zero=scale_to_zero)).values()
            used |= {r["Type"] for r in template["Resources"].values()}
    return frozenset(used)


def check_unsupported_list(supported: set[str], unsupported: frozenset[str], name: str) -> None:
    """Every type used is supported or listed; no whole type listed is supported (case-insensitively)."""
    supported_lower = {t.lower() for t in supported}
    missing = {
        t
        for t in types_of_every_template()
        if t.lower() not in supported_lower and not unsupported_reason({"Type": t}, unsupported)
    }
    assert not missing, f"no CloudFormation support for {sorted(missing)}: add them to {name}"
    listed_whole = {entry for entry in unsupported if "." not in entry and not entry.endswith("*")}
    assert not {t for t in listed_whole if t.lower() in supported_lower}, f"supported now: take them off {name}"


def test_localstack_unsupported_matches_the_installed_localstack() -> None:
    """LocalStack's resource providers, read from its entry points in the lane's venv (no LocalStack started)."""
    files = list(LOCALSTACK_VENV.glob("lib/python*/site-packages/localstack_core-*.dist-info/entry_points.txt"))
    if not files:
        pytest.skip(f"the LocalStack lane is not installed in {LOCALSTACK_VENV} (make test-localstack installs it)")
    providers: set[str] = set()
    for path in files:
        parser = configparser.ConfigParser(delimiters=("=",))
        parser.optionxform = str  # type: ignore[assignment,method-assign]
        parser.read(path)
        if parser.has_section("localstack.cloudformation.resource_providers"):
            providers |= set(parser["localstack.cloudformation.resource_providers"])
    assert providers, files
    check_unsupported_list(providers, LOCALSTACK_UNSUPPORTED, "LOCALSTACK_UNSUPPORTED")


def test_moto_unsupported_matches_the_installed_moto() -> None:
    """Every type of every synthesized template is one moto's CloudFormation has a model for, or is listed as
    unsupported; and no whole type listed is one moto has."""
    from moto.cloudformation.parsing import get_model_map

    check_unsupported_list(set(get_model_map()), MOTO_UNSUPPORTED, "MOTO_UNSUPPORTED")
