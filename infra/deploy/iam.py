"""IAM as template data: policy statements, the ARNs they name, and a role made of them. Shared by every
module that gives a function or a service its own role, so least privilege reads the same everywhere."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from infra.deploy.cfn import Fragment, Json, get_att, sub

POLICY_VERSION = "2012-10-17"

# Managed policies by name; the partition keeps them right in GovCloud and China too.
LAMBDA_VPC_ACCESS = "service-role/AWSLambdaVPCAccessExecutionRole"
LAMBDA_BASIC_EXECUTION = "service-role/AWSLambdaBasicExecutionRole"
ECS_TASK_EXECUTION = "service-role/AmazonECSTaskExecutionRolePolicy"


def statement(
    actions: str | Sequence[str],
    resources: Any | Sequence[Any] = "*",
    *,
    condition: Json | None = None,
    sid: str | None = None,
    effect: str = "Allow",
) -> Json:
    """One policy statement. `resources` is one ARN (a string or an intrinsic) or a list of them."""
    result: Json = {"Effect": effect, "Action": [actions] if isinstance(actions, str) else list(actions)}
    result["Resource"] = list(resources) if isinstance(resources, list | tuple) else resources
    if condition:
        result["Condition"] = condition
    if sid:
        result["Sid"] = sid
    return result


def policy_document(statements: Iterable[Json]) -> Json:
    """A policy document of the statements."""
    return {"Version": POLICY_VERSION, "Statement": list(statements)}


def assume_role_policy(service: str) -> Json:
    """The trust policy that lets one AWS service ("lambda.amazonaws.com", "ecs-tasks.amazonaws.com") take a role."""
    return policy_document(
        [{"Effect": "Allow", "Principal": {"Service": service}, "Action": ["sts:AssumeRole"]}],
    )


def managed_policy_arn(name: str) -> Json:
    """The ARN of an AWS managed policy, e.g. `LAMBDA_VPC_ACCESS`."""
    return sub(f"arn:${{AWS::Partition}}:iam::aws:policy/{name}")


def table_arns(table_logical_id: str) -> list[Json]:
    """A DynamoDB table and every one of its indexes (a Query on an index needs the index's ARN)."""
    return [get_att(table_logical_id, "Arn"), sub(f"${{{table_logical_id}.Arn}}/index/*")]


def bucket_arn(bucket_logical_id: str) -> Json:
    """The bucket itself (ListBucket, HeadBucket)."""
    return get_att(bucket_logical_id, "Arn")


def bucket_objects_arn(bucket_logical_id: str, prefix: str = "") -> Json:
    """The objects under `prefix` ("jobs/") of a bucket; every object when empty."""
    return sub(f"${{{bucket_logical_id}.Arn}}/{prefix}*")


def bucket_keys_arn(bucket_logical_id: str, pattern: str) -> Json:
    """The objects of a bucket whose keys match an IAM pattern ("jobs/*/failed.json": `*` spans slashes too)."""
    return sub(f"${{{bucket_logical_id}.Arn}}/{pattern}")


def queue_arn(queue_logical_id: str) -> Json:
    """An SQS queue's ARN."""
    return get_att(queue_logical_id, "Arn")


def add_role(
    fragment: Fragment,
    logical_id: str,
    *,
    service: str,
    statements: Sequence[Json],
    managed_policies: Sequence[str] = (),
    description: str | None = None,
) -> str:
    """Add a role `service` may take, with its own inline policy of `statements` and the named managed policies;
    returns its logical id. No RoleName: CloudFormation names it, so two stacks in one account never clash."""
    properties: Json = {"AssumeRolePolicyDocument": assume_role_policy(service)}
    if description:
        properties["Description"] = description
    if managed_policies:
        properties["ManagedPolicyArns"] = [managed_policy_arn(name) for name in managed_policies]
    if statements:
        properties["Policies"] = [{"PolicyName": "least-privilege", "PolicyDocument": policy_document(statements)}]
    return fragment.add(logical_id, "AWS::IAM::Role", properties)
