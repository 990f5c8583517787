"""The GPU workers: one ECS cluster on GPU instances, a service per worker kind (generators, trainers), each on its
own Auto Scaling group through its own capacity provider, and scaling on the consumer lag the system publishes.

How it scales, for one kind:
- the lag-metrics function puts `LoRAFoundry/ConsumerLag{ConsumerGroup=<group>}` every minute: records published
  but not committed. A worker commits a record only when its job is done, so a job in progress still counts:
  lag = jobs waiting + jobs running;
- the service's desired count tracks lag per task (lag / desired tasks) at a target per kind (a trainer runs one
  training at a time: 1; a generator gets through a queue of a few quickly);
- target tracking cannot leave zero tasks (no task, no per-task value), so with scale-to-zero a step policy on an
  alarm (lag > 0 while no task is desired) takes the service from 0 to 1;
- ECS's managed scaling then starts (or stops) GPU instances for the tasks, and managed termination protection
  keeps an instance with a running task from being scaled in under it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from infra.consumer_lag import DIMENSION, METRIC_NAME, NAMESPACE
from infra.deploy import catalog
from infra.deploy.catalog import WorkerServiceSpec
from infra.deploy.cfn import REGION, Fragment, Json, equals, get_att, if_, join, ref, sub, tags
from infra.deploy.config import DeployConfig
from infra.deploy.iam import (
    ECS_TASK_EXECUTION,
    add_role,
    bucket_arn,
    bucket_objects_arn,
    statement,
    table_arns,
)
from infra.deploy.kafka_cluster import kafka_client_environment, kafka_client_statements
from infra.deploy.network import private_subnet_ids, security_group_id
from infra.settings import Settings

CLUSTER = "WorkersCluster"
INSTANCE_ROLE = "WorkerInstanceRole"
INSTANCE_PROFILE = "WorkerInstanceProfile"
EXECUTION_ROLE = "WorkerExecutionRole"
CAPACITY_PROVIDER_ASSOCIATIONS = "WorkersCapacityProviders"
GPU_AMI_PARAMETER = "WorkerGpuAmi"
# ECS's GPU-optimized Amazon Linux 2023 AMI (NVIDIA driver, container toolkit, the ECS agent), looked up at deploy.
GPU_AMI_SSM_PATH = "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"

# The metric the lag-metrics function publishes, named once there.
METRIC_NAMESPACE, LAG_METRIC, LAG_DIMENSION = NAMESPACE, METRIC_NAME, DIMENSION

HEARTBEAT_PATH = "/tmp/lorafoundry/heartbeat"
HEARTBEAT_MAX_AGE_S = 60
# The health check: `python -m workers.health` reads the heartbeat the worker's loop touches. A worker warms its
# base model before its loop runs (it beats meanwhile too); the start period covers a first download from S3.
HEALTH_CHECK: Json = {
    "Command": ["CMD", "python", "-m", "workers.health"],
    "Interval": 30,
    "Timeout": 10,
    "Retries": 3,
    "StartPeriod": 300,
}
# SIGTERM -> SIGKILL. A generator finishes the job in hand (a few to some tens of seconds on a g5); a trainer hands
# its training back at its next step (the lease is released and its record left uncommitted, so another trainer
# resumes it from its last checkpoint). 120 s covers both with margin.
STOP_TIMEOUT_S = 120
# The model cache lives on the instance, so a task that replaces another on the same instance finds the weights.
MODEL_CACHE_HOST_PATH = "/var/cache/lorafoundry/models"
MODEL_CACHE_CONTAINER_PATH = "/models"
# The image's non-root user (infra/docker/worker-gpu.Dockerfile, WORKER_UID): the host's cache is given to it.
WORKER_UID = 10001


@dataclass(frozen=True)
class WorkerKind:
    """What differs between the generators' and the trainers' deployment."""

    instance_type: str  # the default of the kind's instance-type parameter
    memory_reservation_mib: int  # what the task reserves on its instance (soft limit)
    max_tasks: int  # the default of the kind's maximum-tasks parameter
    lag_per_task: int  # target tracking's target: lag (waiting + running jobs) per task
    scale_in_cooldown_s: int
    consumer_group: Callable[[Settings], str]
    statements: Callable[[DeployConfig], list[Json]]  # its S3 and DynamoDB permissions
    # Protect a task from the service's scale-in while it runs a job (workers.service.TaskProtection): for jobs
    # longer than the stop timeout. Each job then costs two ECS API calls, so not for the many short generations.
    scale_in_protection: bool = False


def _table(settings_table: Callable[[Settings], str]) -> Callable[[DeployConfig], list[Json]]:
    def arns(config: DeployConfig) -> list[Json]:
        return table_arns(catalog.table_logical_id(settings_table(config.settings), config.prefix))

    return arns


_jobs_table = _table(lambda s: s.jobs_table)
_models_table = _table(lambda s: s.models_table)
_workers_table = _table(lambda s: s.workers_table)
_base_models_table = _table(lambda s: s.base_models_table)
# Each worker's own record among the live workers: written while it lives, deleted on a clean stop.
_WORKER_RECORD = ["dynamodb:PutItem", "dynamodb:DeleteItem"]
# Items of the jobs table a worker touches: get, conditional claim/renew/advance, and create (a direct producer's
# job arrives with no record). No Scan, no Delete.
_ITEM_WRITE = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]
# Base models given as s3:// prefixes (LF_BASE_MODELS) are read from here.
BASE_MODELS_PREFIX = "base-models/"


def _generator_statements(config: DeployConfig) -> list[Json]:
    bucket = catalog.BUCKET
    return [
        statement(_ITEM_WRITE, _jobs_table(config), sid="Jobs"),
        statement(_WORKER_RECORD, _workers_table(config), sid="LiveWorkers"),
        # Base models an operator registered at run time: a worker reads the row of a name it does not know.
        statement("dynamodb:GetItem", _base_models_table(config), sid="RegisteredBaseModels"),
        # Inputs of modify jobs (their own, or a tenant's upload), trained adapters, base models.
        statement(
            "s3:GetObject",
            [bucket_objects_arn(bucket, p) for p in ("jobs/", "uploads/", "trainings/", BASE_MODELS_PREFIX)],
            sid="ReadInputs",
        ),
        statement("s3:PutObject", [bucket_objects_arn(bucket, "jobs/")], sid="WriteOutputs"),
        _list_statement([BASE_MODELS_PREFIX]),
    ]


def _trainer_statements(config: DeployConfig) -> list[Json]:
    bucket = catalog.BUCKET
    return [
        statement(_ITEM_WRITE, _jobs_table(config), sid="Jobs"),
        statement(_WORKER_RECORD, _workers_table(config), sid="LiveWorkers"),
        statement("dynamodb:GetItem", _base_models_table(config), sid="RegisteredBaseModels"),
        # A direct producer's training takes its model (a conditional move to `training`).
        statement(["dynamodb:GetItem", "dynamodb:UpdateItem"], _models_table(config), sid="Models"),
        # Training images (a model's data, or a tenant's uploads), its own checkpoints, base models.
        statement(
            "s3:GetObject",
            [bucket_objects_arn(bucket, p) for p in ("models/", "uploads/", "trainings/", BASE_MODELS_PREFIX)],
            sid="ReadInputs",
        ),
        statement("s3:PutObject", [bucket_objects_arn(bucket, "trainings/")], sid="WriteOutputs"),
        # Finding the last checkpoint lists the training's prefix.
        _list_statement(["trainings/", BASE_MODELS_PREFIX]),
        # Scale-in protection while a training runs (through the ECS agent, with the task's own role).
        statement(
            ["ecs:UpdateTaskProtection", "ecs:GetTaskProtection"],
            sub(f"arn:${{AWS::Partition}}:ecs:${{AWS::Region}}:${{AWS::AccountId}}:task/{cluster_name(config)}/*"),
            sid="TaskProtection",
        ),
    ]


def _list_statement(prefixes: list[str]) -> Json:
    return statement(
        "s3:ListBucket",
        bucket_arn(catalog.BUCKET),
        condition={"StringLike": {"s3:prefix": [f"{prefix}*" for prefix in prefixes]}},
        sid="ListPrefixes",
    )


KINDS: dict[str, WorkerKind] = {
    catalog.GENERATOR.name: WorkerKind(
        instance_type="g5.xlarge",  # 1 A10G (24 GB), 4 vCPU, 16 GiB
        memory_reservation_mib=12_288,
        max_tasks=4,
        lag_per_task=4,
        scale_in_cooldown_s=300,
        consumer_group=lambda s: s.kafka_consumer_group,
        statements=_generator_statements,
    ),
    catalog.TRAINER.name: WorkerKind(
        instance_type="g5.2xlarge",  # 1 A10G (24 GB), 8 vCPU, 32 GiB: the image preprocessing and optimizer state
        memory_reservation_mib=24_576,
        max_tasks=2,
        lag_per_task=1,  # one training per task: a waiting training asks for a task of its own
        scale_in_cooldown_s=600,
        consumer_group=lambda s: s.kafka_training_consumer_group,
        statements=_trainer_statements,
        scale_in_protection=True,
    ),
}


def cluster_name(config: DeployConfig) -> str:
    """The workers' ECS cluster."""
    return f"{config.prefix}-workers"


def _title(spec: WorkerServiceSpec) -> str:
    return spec.name.capitalize()  # "generator" -> "Generator": the kind's logical-id prefix


def consumer_group(config: DeployConfig, spec: WorkerServiceSpec) -> str:
    """The consumer group a worker service reads as (and whose lag it scales on)."""
    return KINDS[spec.name].consumer_group(config.settings)


def worker_environment(config: DeployConfig, spec: WorkerServiceSpec) -> list[Json]:
    """The container's environment: the settings that name every resource, Kafka, the heartbeat, the cache."""
    values: dict[str, Json | str] = {
        "LF_RESOURCE_PREFIX": config.prefix,
        "LF_AWS_REGION": REGION,
        "LF_BUCKET_NAME": ref(catalog.BUCKET),
        **kafka_client_environment(config),
        "LF_WORKER_HEARTBEAT_PATH": HEARTBEAT_PATH,
        "LF_WORKER_HEARTBEAT_MAX_AGE_SECONDS": str(HEARTBEAT_MAX_AGE_S),
        "LF_MODEL_CACHE_DIR": MODEL_CACHE_CONTAINER_PATH,
        "LF_TORCH_DEVICE": "cuda",
        "LF_WORKER_SCALE_IN_PROTECTION": "true" if KINDS[spec.name].scale_in_protection else "false",
        "PYTHONUNBUFFERED": "1",
    }
    return [{"Name": name, "Value": value} for name, value in values.items()]


def workers_fragment(config: DeployConfig) -> Fragment:
    """The ECS cluster, the GPU capacity, ECR repositories, and per worker kind: a task definition, its roles, its
    service and its scaling on consumer lag."""
    fragment = Fragment()
    fragment.parameter(
        GPU_AMI_PARAMETER,
        "the ECS GPU-optimized AMI (an SSM parameter path; the default follows AWS's recommended image)",
        Type="AWS::SSM::Parameter::Value<AWS::EC2::Image::Id>",
        Default=GPU_AMI_SSM_PATH,
    )
    fragment.add(
        CLUSTER,
        "AWS::ECS::Cluster",
        {
            "ClusterName": cluster_name(config),
            # Container Insights publishes the services' task counts, which the lag-per-task metric divides by.
            "ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}],
            "Tags": tags(Name=f"{config.prefix}-workers"),
        },
    )
    _instance_role(fragment)
    add_role(
        fragment,
        EXECUTION_ROLE,
        service="ecs-tasks.amazonaws.com",
        statements=[],
        managed_policies=[ECS_TASK_EXECUTION],
        description="ECS pulls the worker images from ECR and writes their logs",
    )
    providers = [_worker(fragment, config, spec) for spec in catalog.WORKER_SERVICES]
    fragment.add(
        CAPACITY_PROVIDER_ASSOCIATIONS,
        "AWS::ECS::ClusterCapacityProviderAssociations",
        {
            "Cluster": ref(CLUSTER),
            "CapacityProviders": [ref(provider) for provider in providers],
            "DefaultCapacityProviderStrategy": [{"CapacityProvider": ref(providers[0]), "Weight": 1}],
        },
    )
    fragment.output("WorkersClusterName", ref(CLUSTER), "the ECS cluster of the GPU workers")
    return fragment


def _instance_role(fragment: Fragment) -> None:
    add_role(
        fragment,
        INSTANCE_ROLE,
        service="ec2.amazonaws.com",
        statements=[],
        managed_policies=[
            "service-role/AmazonEC2ContainerServiceforEC2Role",  # the ECS agent registers and runs tasks
            "AmazonSSMManagedInstanceCore",  # shell access through Session Manager: no SSH, no open port
        ],
        description="the GPU instances' ECS agent (tasks get their own roles)",
    )
    fragment.add(INSTANCE_PROFILE, "AWS::IAM::InstanceProfile", {"Roles": [ref(INSTANCE_ROLE)]})


def _worker(fragment: Fragment, config: DeployConfig, spec: WorkerServiceSpec) -> str:
    """Everything of one worker kind; returns its capacity provider's logical id."""
    kind = KINDS[spec.name]
    title = _title(spec)
    name = f"{config.prefix}-{spec.name}"

    instance_type = fragment.parameter(
        f"{title}InstanceType", f"GPU instance type of the {spec.name}s", Default=kind.instance_type
    )
    max_tasks = fragment.parameter(
        f"{title}MaxTasks",
        f"most {spec.name} tasks (and GPU instances) at once; the topic's partitions bound useful parallelism",
        Type="Number",
        Default=str(min(kind.max_tasks, config.kafka_partitions)),
        MinValue=1,
        MaxValue=config.kafka_partitions,
    )
    lag_target = fragment.parameter(
        f"{title}LagPerTask",
        f"target of {spec.name} scaling: jobs waiting or running per task",
        Type="Number",
        Default=str(kind.lag_per_task),
        MinValue=1,
    )
    image = _image(fragment, config, spec, title)

    launch_template = fragment.add(
        f"{title}LaunchTemplate",
        "AWS::EC2::LaunchTemplate",
        {
            "LaunchTemplateData": {
                "ImageId": ref(GPU_AMI_PARAMETER),
                "InstanceType": ref(instance_type),
                "IamInstanceProfile": {"Arn": get_att(INSTANCE_PROFILE, "Arn")},
                "SecurityGroupIds": [security_group_id(catalog.WORKERS_SECURITY_GROUP)],
                # IMDSv2 only, one hop: containers cannot take the instance's role (tasks have their own).
                "MetadataOptions": {"HttpTokens": "required", "HttpPutResponseHopLimit": 1, "HttpEndpoint": "enabled"},
                # Room for the CUDA image (about 10 GB) and the model cache.
                "BlockDeviceMappings": [
                    {
                        "DeviceName": "/dev/xvda",
                        "Ebs": {"VolumeSize": 150, "VolumeType": "gp3", "Encrypted": True, "DeleteOnTermination": True},
                    }
                ],
                "UserData": {
                    "Fn::Base64": sub(
                        "#!/bin/bash\n"
                        "cat >> /etc/ecs/ecs.config <<EOF\n"
                        "ECS_CLUSTER=${Cluster}\n"
                        "ECS_ENABLE_GPU_SUPPORT=true\n"
                        "ECS_ENABLE_TASK_IAM_ROLE=true\n"
                        "ECS_AWSVPC_BLOCK_IMDS=true\n"
                        "EOF\n"
                        f"install -d -o {WORKER_UID} -g {WORKER_UID} {MODEL_CACHE_HOST_PATH}\n",
                        Cluster=ref(CLUSTER),
                    )
                },
                "TagSpecifications": [{"ResourceType": "instance", "Tags": tags(Name=name)}],
            }
        },
    )
    group = fragment.add(
        f"{title}AutoScalingGroup",
        "AWS::AutoScaling::AutoScalingGroup",
        {
            "MinSize": "0",  # managed scaling sizes it; no task, no GPU instance
            "MaxSize": ref(max_tasks),  # one GPU per task, one GPU per instance
            "VPCZoneIdentifier": private_subnet_ids(),
            "LaunchTemplate": {
                "LaunchTemplateId": ref(launch_template),
                "Version": get_att(launch_template, "LatestVersionNumber"),
            },
            # Managed termination protection needs it: ECS lifts it only from instances with no task.
            "NewInstancesProtectedFromScaleIn": True,
            "Tags": [{"Key": "Name", "Value": name, "PropagateAtLaunch": True}],
        },
    )
    provider = fragment.add(
        f"{title}CapacityProvider",
        "AWS::ECS::CapacityProvider",
        {
            "AutoScalingGroupProvider": {
                "AutoScalingGroupArn": ref(group),
                "ManagedScaling": {
                    "Status": "ENABLED",
                    "TargetCapacity": 100,  # no idle spare GPU instance
                    "MinimumScalingStepSize": 1,
                    "MaximumScalingStepSize": 4,
                    "InstanceWarmupPeriod": 300,
                },
                "ManagedTerminationProtection": "ENABLED",
                # An instance leaving (scale-in, refresh) first stops its tasks, each with its SIGTERM and stop time.
                "ManagedDraining": "ENABLED",
            },
            "Tags": tags(Name=name),
        },
    )
    log_group = fragment.add(
        f"{title}LogGroup",
        "AWS::Logs::LogGroup",
        {"LogGroupName": f"/ecs/{name}", "RetentionInDays": 30},
        DeletionPolicy="Delete",
        UpdateReplacePolicy="Delete",
    )
    task_role = add_role(
        fragment,
        f"{title}TaskRole",
        service="ecs-tasks.amazonaws.com",
        statements=[*kind.statements(config), *kafka_client_statements(config)],
        description=f"the {spec.name}s: their tables, bucket prefixes and Kafka",
    )
    task_definition = fragment.add(
        f"{title}TaskDefinition",
        "AWS::ECS::TaskDefinition",
        {
            "Family": name,
            "RequiresCompatibilities": ["EC2"],
            "NetworkMode": "awsvpc",
            "ExecutionRoleArn": get_att(EXECUTION_ROLE, "Arn"),
            "TaskRoleArn": get_att(task_role, "Arn"),
            "Volumes": [{"Name": "models", "Host": {"SourcePath": MODEL_CACHE_HOST_PATH}}],
            "ContainerDefinitions": [
                {
                    "Name": spec.name,
                    "Image": image,
                    "Essential": True,
                    "Command": ["python", "-m", spec.module],
                    "ResourceRequirements": [{"Type": "GPU", "Value": "1"}],
                    "MemoryReservation": kind.memory_reservation_mib,
                    "Environment": worker_environment(config, spec),
                    "MountPoints": [{"SourceVolume": "models", "ContainerPath": MODEL_CACHE_CONTAINER_PATH}],
                    "HealthCheck": HEALTH_CHECK,
                    "StopTimeout": STOP_TIMEOUT_S,
                    # An init process as PID 1 forwards SIGTERM and reaps the model downloads' children.
                    "LinuxParameters": {"InitProcessEnabled": True},
                    "LogConfiguration": {
                        "LogDriver": "awslogs",
                        "Options": {
                            "awslogs-group": ref(log_group),
                            "awslogs-region": REGION,
                            "awslogs-stream-prefix": spec.name,
                        },
                    },
                }
            ],
            "Tags": tags(Name=name),
        },
    )
    minimum = 0 if config.scale_to_zero else 1
    service = fragment.add(
        spec.logical_id,
        "AWS::ECS::Service",
        {
            "ServiceName": name,
            "Cluster": ref(CLUSTER),
            "TaskDefinition": ref(task_definition),
            # Scaling owns the count afterwards; a stack update sets it back to the minimum (scaling corrects
            # it within minutes).
            "DesiredCount": minimum,
            "CapacityProviderStrategy": [{"CapacityProvider": ref(provider), "Weight": 1, "Base": 0}],
            "NetworkConfiguration": {
                "AwsvpcConfiguration": {
                    "Subnets": private_subnet_ids(),
                    "SecurityGroups": [security_group_id(catalog.WORKERS_SECURITY_GROUP)],
                    "AssignPublicIp": "DISABLED",
                }
            },
            "DeploymentConfiguration": {
                "MinimumHealthyPercent": 100,
                "MaximumPercent": 200,
                "DeploymentCircuitBreaker": {"Enable": True, "Rollback": True},
            },
            "PropagateTags": "SERVICE",
            "Tags": tags(Name=name),
        },
        DependsOn=[CAPACITY_PROVIDER_ASSOCIATIONS],
    )
    _scaling(fragment, config, spec, service, minimum, max_tasks, lag_target)
    return provider


def _image(fragment: Fragment, config: DeployConfig, spec: WorkerServiceSpec, title: str) -> Json:
    """The kind's ECR repository, and the image its tasks run: the parameter, or the repository's `latest`."""
    repository = fragment.add(
        f"{title}Repository",
        "AWS::ECR::Repository",
        {
            "RepositoryName": f"{config.prefix}/{spec.name}",
            "ImageScanningConfiguration": {"ScanOnPush": True},
            "ImageTagMutability": "MUTABLE",
            "LifecyclePolicy": {
                "LifecyclePolicyText": (
                    '{"rules": [{"rulePriority": 1, "description": "keep the last 10 images", '
                    '"selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 10}, '
                    '"action": {"type": "expire"}}]}'
                )
            },
            "Tags": tags(Name=f"{config.prefix}-{spec.name}"),
        },
    )
    parameter = fragment.parameter(
        f"{title}Image",
        f"the {spec.name} image URI; empty: the stack's own ECR repository, tag latest (push it first)",
        Default="",
    )
    condition = fragment.condition(f"{title}ImageFromRepository", equals(ref(parameter), ""))
    fragment.output(f"{title}RepositoryUri", get_att(repository, "RepositoryUri"), f"push the {spec.name} image here")
    return if_(condition, join(":", [get_att(repository, "RepositoryUri"), "latest"]), ref(parameter))


def _lag_metrics(config: DeployConfig, spec: WorkerServiceSpec, service: str, *, alarm: bool = False) -> list[Json]:
    """`lag` (the kind's consumer lag) and `tasks` (its desired task count), as target tracking takes them (its
    period is a minute) or, with `alarm`, as an alarm does (with the period stated)."""
    period = {"Period": 60} if alarm else {}
    return [
        {
            "Id": "lag",
            "MetricStat": {
                "Metric": {
                    "Namespace": METRIC_NAMESPACE,
                    "MetricName": LAG_METRIC,
                    "Dimensions": [{"Name": LAG_DIMENSION, "Value": consumer_group(config, spec)}],
                },
                "Stat": "Maximum",
                **period,
            },
            "ReturnData": False,
        },
        {
            # Desired rather than running: a task waiting for its GPU instance counts already, so the minutes an
            # instance takes to boot do not read as a need for more.
            "Id": "tasks",
            "MetricStat": {
                "Metric": {
                    "Namespace": "ECS/ContainerInsights",
                    "MetricName": "DesiredTaskCount",
                    "Dimensions": [
                        {"Name": "ClusterName", "Value": ref(CLUSTER)},
                        {"Name": "ServiceName", "Value": get_att(service, "Name")},
                    ],
                },
                "Stat": "Maximum",
                **period,
            },
            "ReturnData": False,
        },
    ]


def _scaling(
    fragment: Fragment,
    config: DeployConfig,
    spec: WorkerServiceSpec,
    service: str,
    minimum: int,
    max_tasks: str,
    lag_target: str,
) -> None:
    title = _title(spec)
    target = fragment.add(
        f"{title}ScalableTarget",
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {
            "ServiceNamespace": "ecs",
            "ScalableDimension": "ecs:service:DesiredCount",
            "ResourceId": sub("service/${Cluster}/${Service}", Cluster=ref(CLUSTER), Service=get_att(service, "Name")),
            "MinCapacity": minimum,
            "MaxCapacity": ref(max_tasks),
        },
    )
    metrics = _lag_metrics(config, spec, service)
    fragment.add(
        f"{title}LagTracking",
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "PolicyName": f"{config.prefix}-{spec.name}-lag-per-task",
            "PolicyType": "TargetTrackingScaling",
            "ScalingTargetId": ref(target),
            "TargetTrackingScalingPolicyConfiguration": {
                "TargetValue": ref(lag_target),
                "CustomizedMetricSpecification": {
                    "Metrics": [
                        *metrics,
                        {
                            "Id": "lagPerTask",
                            "Expression": "lag / IF(FILL(tasks, 0) > 0, FILL(tasks, 0), 1)",
                            "Label": f"{spec.name} consumer lag per task",
                            "ReturnData": True,
                        },
                    ]
                },
                "ScaleOutCooldown": 60,
                "ScaleInCooldown": KINDS[spec.name].scale_in_cooldown_s,
            },
        },
    )
    if not config.scale_to_zero:
        return
    wake = fragment.add(
        f"{title}WakeFromZero",
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "PolicyName": f"{config.prefix}-{spec.name}-wake-from-zero",
            "PolicyType": "StepScaling",
            "ScalingTargetId": ref(target),
            "StepScalingPolicyConfiguration": {
                "AdjustmentType": "ChangeInCapacity",
                "MetricAggregationType": "Maximum",
                "Cooldown": 120,
                "StepAdjustments": [{"MetricIntervalLowerBound": 0, "ScalingAdjustment": 1}],
            },
        },
    )
    fragment.add(
        f"{title}WorkWaitingAlarm",
        "AWS::CloudWatch::Alarm",
        {
            "AlarmDescription": f"{spec.name}s: work is waiting and no task is desired (scale from zero)",
            # 1 while lag > 0 and no task is desired: the alarm clears as soon as one task is, so repeated
            # alarm actions never add a second one (target tracking takes over from there).
            "Metrics": [
                *_lag_metrics(config, spec, service, alarm=True),
                {
                    "Id": "waitingAtZero",
                    "Expression": "IF(lag > 0 AND FILL(tasks, 0) == 0, 1, 0)",
                    "Label": f"{spec.name} work waiting with no task",
                    "ReturnData": True,
                },
            ],
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 0,
            "EvaluationPeriods": 1,
            "DatapointsToAlarm": 1,
            "TreatMissingData": "notBreaching",
            "AlarmActions": [ref(wake)],
        },
    )
