"""The template's GPU workers, network and Kafka, read as data (cfn-lint checks their schema in
test_deploy_lint.py): what a local CloudFormation cannot create is checked here."""

from __future__ import annotations

import importlib.util
import json
from typing import Any

import pytest

from infra.deploy import catalog
from infra.deploy.cfn import Fragment, Json
from infra.deploy.config import DeployConfig, KafkaMode
from infra.deploy.kafka_cluster import kafka_event_source, kafka_fragment
from infra.deploy.network import KAFKA_IAM_PORT, KAFKA_SCRAM_PORT, network_fragment, private_subnet_ids
from infra.deploy.workers import HEARTBEAT_MAX_AGE_S, STOP_TIMEOUT_S, workers_fragment
from infra.settings import Settings


def of_type(fragment: Fragment, resource_type: str) -> dict[str, Json]:
    return {lid: r for lid, r in fragment.resources.items() if r["Type"] == resource_type}


def container(fragment: Fragment, spec: catalog.WorkerServiceSpec) -> Json:
    (task,) = [
        r
        for r in of_type(fragment, "AWS::ECS::TaskDefinition").values()
        if r["Properties"]["Family"].endswith(spec.name)
    ]
    (definition,) = task["Properties"]["ContainerDefinitions"]
    return definition


def environment(definition: Json) -> dict[str, Any]:
    return {item["Name"]: item["Value"] for item in definition["Environment"]}


@pytest.mark.parametrize("spec", catalog.WORKER_SERVICES, ids=lambda s: s.name)
def test_each_task_gets_one_gpu_a_health_check_and_time_to_stop(spec: catalog.WorkerServiceSpec) -> None:
    definition = container(workers_fragment(DeployConfig()), spec)
    assert definition["ResourceRequirements"] == [{"Type": "GPU", "Value": "1"}]
    assert definition["Command"] == ["python", "-m", spec.module]
    check = definition["HealthCheck"]["Command"]
    assert check[:2] == ["CMD", "python"] and check[2] == "-m"
    assert importlib.util.find_spec(check[3]) is not None  # the health check's module exists in the image's code
    assert definition["StopTimeout"] == STOP_TIMEOUT_S
    env = environment(definition)
    # The heartbeat the health check reads is written (a path), and stale only well after the loop's beats stop.
    assert env["LF_WORKER_HEARTBEAT_PATH"].startswith("/")
    assert float(env["LF_WORKER_HEARTBEAT_MAX_AGE_SECONDS"]) == HEARTBEAT_MAX_AGE_S
    assert definition["HealthCheck"]["Interval"] < HEARTBEAT_MAX_AGE_S


@pytest.mark.parametrize("mode", list(KafkaMode))
def test_every_lf_variable_of_a_worker_is_a_setting(mode: KafkaMode) -> None:
    fields = set(Settings.model_fields)
    for spec in catalog.WORKER_SERVICES:
        env = environment(container(workers_fragment(DeployConfig(kafka=mode)), spec))
        names = {name.removeprefix("LF_").lower() for name in env if name.startswith("LF_")}
        assert names <= fields, f"not settings: {sorted(names - fields)}"
        assert env["LF_RESOURCE_PREFIX"] == "lorafoundry"


def scaling_groups(fragment: Fragment, resource_type: str) -> dict[str, set[str]]:
    """Policy or alarm logical id -> the ConsumerGroup dimensions its metrics name."""
    found = {}
    for logical_id, resource in of_type(fragment, resource_type).items():
        text = json.dumps(resource)
        groups = {
            dimension["Value"]
            for query in _queries(resource)
            for dimension in query.get("MetricStat", {}).get("Metric", {}).get("Dimensions", [])
            if dimension["Name"] == "ConsumerGroup"
        }
        if "ConsumerLag" in text:
            found[logical_id] = groups
    return found


def _queries(resource: Json) -> list[Json]:
    properties = resource["Properties"]
    if "Metrics" in properties:  # an alarm
        return properties["Metrics"]
    tracking = properties.get("TargetTrackingScalingPolicyConfiguration", {})
    return tracking.get("CustomizedMetricSpecification", {}).get("Metrics", [])


def test_scaling_follows_each_services_own_consumer_group() -> None:
    config = DeployConfig()
    fragment = workers_fragment(config)
    settings = config.settings
    expected = {"Generator": settings.kafka_consumer_group, "Trainer": settings.kafka_training_consumer_group}
    tracking = scaling_groups(fragment, "AWS::ApplicationAutoScaling::ScalingPolicy")
    alarms = scaling_groups(fragment, "AWS::CloudWatch::Alarm")
    assert set(tracking) == {"GeneratorLagTracking", "TrainerLagTracking"}
    assert set(alarms) == {"GeneratorWorkWaitingAlarm", "TrainerWorkWaitingAlarm"}
    for logical_id, groups in {**tracking, **alarms}.items():
        kind = "Generator" if logical_id.startswith("Generator") else "Trainer"
        assert groups == {expected[kind]}, logical_id
    policy = fragment.resources["TrainerLagTracking"]["Properties"]
    metrics = policy["TargetTrackingScalingPolicyConfiguration"]["CustomizedMetricSpecification"]["Metrics"]
    assert [m["Id"] for m in metrics if m.get("ReturnData")] == ["lagPerTask"]  # lag per task, not lag
    # The alarm that wakes a service from zero acts on that service's step policy.
    alarm = fragment.resources["TrainerWorkWaitingAlarm"]["Properties"]
    assert alarm["AlarmActions"] == [{"Ref": "TrainerWakeFromZero"}]


@pytest.mark.parametrize(("scale_to_zero", "minimum"), [(True, 0), (False, 1)])
def test_minimum_capacity_by_config(scale_to_zero: bool, minimum: int) -> None:
    fragment = workers_fragment(DeployConfig(scale_to_zero=scale_to_zero))
    targets = of_type(fragment, "AWS::ApplicationAutoScaling::ScalableTarget")
    assert len(targets) == 2
    assert {t["Properties"]["MinCapacity"] for t in targets.values()} == {minimum}
    services = of_type(fragment, "AWS::ECS::Service")
    assert {s["Properties"]["DesiredCount"] for s in services.values()} == {minimum}
    step_policies = [
        p
        for p in of_type(fragment, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
        if p["Properties"]["PolicyType"] == "StepScaling"
    ]
    assert len(step_policies) == (2 if scale_to_zero else 0)
    assert len(of_type(fragment, "AWS::CloudWatch::Alarm")) == (2 if scale_to_zero else 0)


def test_gpu_capacity_one_provider_per_kind_with_managed_scaling_and_protection() -> None:
    fragment = workers_fragment(DeployConfig())
    providers = of_type(fragment, "AWS::ECS::CapacityProvider")
    assert len(providers) == 2
    for provider in providers.values():
        group = provider["Properties"]["AutoScalingGroupProvider"]
        assert group["ManagedScaling"]["Status"] == "ENABLED"
        assert group["ManagedTerminationProtection"] == "ENABLED"
        asg = fragment.resources[group["AutoScalingGroupArn"]["Ref"]]["Properties"]
        assert asg["MinSize"] == "0" and asg["NewInstancesProtectedFromScaleIn"] is True
    for spec in catalog.WORKER_SERVICES:
        strategy = fragment.resources[spec.logical_id]["Properties"]["CapacityProviderStrategy"]
        assert strategy == [
            {"CapacityProvider": {"Ref": f"{spec.name.capitalize()}CapacityProvider"}, "Weight": 1, "Base": 0}
        ]
    ami = fragment.parameters["WorkerGpuAmi"]
    assert ami["Default"].endswith("/amazon-linux-2023/gpu/recommended/image_id")
    assert fragment.parameters["GeneratorInstanceType"]["Default"] == "g5.xlarge"
    assert fragment.parameters["TrainerInstanceType"]["Default"] == "g5.2xlarge"


def _actions(role: Json) -> dict[str, list[Any]]:
    """Action -> the resources granted, over the role's inline policy."""
    granted: dict[str, list[Any]] = {}
    for policy in role["Properties"].get("Policies", []):
        for statement in policy["PolicyDocument"]["Statement"]:
            resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            for action in statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]:
                granted.setdefault(action, []).extend(resources)
    return granted


def test_task_roles_are_least_privilege() -> None:
    fragment = workers_fragment(DeployConfig())
    generator = _actions(fragment.resources["GeneratorTaskRole"])
    trainer = _actions(fragment.resources["TrainerTaskRole"])
    for granted in (generator, trainer):
        assert not any(action.endswith("*") for action in granted)
        assert not {"dynamodb:Scan", "s3:DeleteObject"} & set(granted)
        # The one delete: the worker's own record among the live workers, on a clean stop.
        assert all("WorkersTable" in json.dumps(arn) for arn in granted["dynamodb:DeleteItem"])
    # Each writes only its own prefix.
    assert json.dumps(generator["s3:PutObject"]) == json.dumps([{"Fn::Sub": "${ArtifactsBucket.Arn}/jobs/*"}])
    assert json.dumps(trainer["s3:PutObject"]) == json.dumps([{"Fn::Sub": "${ArtifactsBucket.Arn}/trainings/*"}])
    # Only the trainer, whose trainings outlast the stop timeout, protects its task from scale-in while busy.
    assert "ecs:UpdateTaskProtection" in trainer and "ecs:UpdateTaskProtection" not in generator
    protection = {
        spec.name: environment(container(fragment, spec))["LF_WORKER_SCALE_IN_PROTECTION"]
        for spec in catalog.WORKER_SERVICES
    }
    assert protection == {"generator": "false", "trainer": "true"}
    # Only the trainer touches models (a direct producer's training takes its model).
    assert '"ModelsTable"' in json.dumps(trainer["dynamodb:UpdateItem"])
    assert '"ModelsTable"' not in json.dumps(generator)
    # Both read a registered base model's row by name (never a scan: checked above).
    assert all('"BaseModelsTable"' in json.dumps(granted["dynamodb:GetItem"]) for granted in (generator, trainer))
    # Kafka by IAM (the default, MSK Serverless), scoped to the cluster's topics and groups.
    assert all("KafkaCluster" in json.dumps(r) for r in generator["kafka-cluster:ReadData"])


def test_network_two_azs_private_subnets_behind_a_nat_and_kafka_ports() -> None:
    fragment = network_fragment(DeployConfig())
    subnets = of_type(fragment, "AWS::EC2::Subnet")
    assert {s["Properties"]["AvailabilityZone"]["Fn::Select"][0] for s in subnets.values()} == {0, 1}
    assert private_subnet_ids() == [{"Ref": lid} for lid in catalog.PRIVATE_SUBNETS]
    assert set(catalog.PRIVATE_SUBNETS) <= set(subnets)
    assert len(of_type(fragment, "AWS::EC2::NatGateway")) == 1
    endpoints = of_type(fragment, "AWS::EC2::VPCEndpoint").values()
    assert sorted(e["Properties"]["ServiceName"]["Fn::Sub"].rsplit(".", 1)[1] for e in endpoints) == ["dynamodb", "s3"]
    assert all(e["Properties"]["VpcEndpointType"] == "Gateway" for e in endpoints)
    ingress = fragment.resources[catalog.KAFKA_SECURITY_GROUP]["Properties"]["SecurityGroupIngress"]
    admitted = {(rule["FromPort"], rule["SourceSecurityGroupId"]["Fn::GetAtt"][0]) for rule in ingress}
    assert admitted == {
        (port, group)
        for port in (KAFKA_IAM_PORT, KAFKA_SCRAM_PORT)
        for group in (catalog.FUNCTIONS_SECURITY_GROUP, catalog.WORKERS_SECURITY_GROUP)
    }


def test_kafka_by_mode() -> None:
    serverless = kafka_fragment(DeployConfig(kafka=KafkaMode.MSK_SERVERLESS))
    assert serverless.resources[catalog.KAFKA_CLUSTER]["Type"] == "AWS::MSK::ServerlessCluster"
    assert serverless.resources[catalog.KAFKA_CLUSTER]["Properties"]["ClientAuthentication"] == {
        "Sasl": {"Iam": {"Enabled": True}}
    }
    assert not of_type(serverless, "AWS::SecretsManager::Secret")

    provisioned = kafka_fragment(DeployConfig(kafka=KafkaMode.MSK_PROVISIONED))
    cluster = provisioned.resources[catalog.KAFKA_CLUSTER]["Properties"]
    assert cluster["ClientAuthentication"]["Sasl"] == {"Scram": {"Enabled": True}}
    (secret,) = of_type(provisioned, "AWS::SecretsManager::Secret").values()
    assert secret["Properties"]["Name"].startswith("AmazonMSK_")  # MSK refuses any other name
    assert secret["Properties"]["KmsKeyId"] == {"Ref": "KafkaCredentialsKey"}  # a customer-managed key
    assert "GenerateSecretString" in secret["Properties"]
    (association,) = of_type(provisioned, "AWS::MSK::BatchScramSecret").values()
    assert association["Properties"]["SecretArnList"] == [{"Ref": catalog.KAFKA_SECRET}]
    # Brokers spread evenly over the two AZs and hold three replicas.
    assert all(int(v) % 2 == 0 and int(v) >= 3 for v in provisioned.parameters["KafkaBrokerCount"]["AllowedValues"])

    external = kafka_fragment(DeployConfig(kafka=KafkaMode.EXTERNAL))
    assert not external.resources and set(external.parameters) == {"KafkaBootstrapServers", "KafkaSecretArn"}


def test_event_sources_by_mode() -> None:
    serverless = kafka_event_source(DeployConfig(kafka=KafkaMode.MSK_SERVERLESS), "t", "g")
    assert serverless["EventSourceArn"] == {"Ref": catalog.KAFKA_CLUSTER}
    assert serverless["AmazonManagedKafkaEventSourceConfig"] == {"ConsumerGroupId": "g"}
    assert "SourceAccessConfigurations" not in serverless  # IAM: the function's role

    provisioned = kafka_event_source(DeployConfig(kafka=KafkaMode.MSK_PROVISIONED), "t", "g")
    assert provisioned["SourceAccessConfigurations"] == [
        {"Type": "SASL_SCRAM_512_AUTH", "URI": {"Ref": "KafkaCredentials"}}
    ]

    external = kafka_event_source(DeployConfig(kafka=KafkaMode.EXTERNAL), "t", "g")
    assert external["Topics"] == ["t"] and external["SelfManagedKafkaEventSourceConfig"] == {"ConsumerGroupId": "g"}
    assert "EventSourceArn" not in external
    kinds = [access["Type"] for access in external["SourceAccessConfigurations"]]
    assert kinds == ["SASL_SCRAM_512_AUTH", "VPC_SUBNET", "VPC_SUBNET", "VPC_SECURITY_GROUP"]
