"""The part of the deployment template a local CloudFormation (moto's, LocalStack's) can create.

A local CloudFormation lacks some resource types (MSK, ECS capacity providers, API Gateway v2...). moto skips a
type it lacks without an error, but then a `Ref` to the skipped resource breaks the stack; so the subset drops
those resources first and, transitively, every resource and output that refers to one. What is dropped is
returned with the reason, so a test states plainly what a local deployment does not prove (cfn-lint and the
tests on the template itself cover those parts).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from infra.deploy.cfn import Json

# How an entry of an "unsupported" set matches a resource:
#   "AWS::MSK::Cluster"                                   every resource of that type;
#   "Custom::*"                                           every type starting with "Custom::";
#   "AWS::Lambda::EventSourceMapping.SelfManagedEventSource"   resources of that type that set that property
#                                                         (a type the local CloudFormation has, but not that use).
#
# moto 5.2's CloudFormation: the types the template uses that moto has no model for (the models are the direct
# subclasses of `moto.core.common_models.CloudFormationModel`; tests/unit/test_deploy_template.py checks this list
# against the installed moto), plus the uses of supported types moto cannot create.
MOTO_UNSUPPORTED: frozenset[str] = frozenset(
    {
        "AWS::ApiGatewayV2::*",
        "AWS::ApplicationAutoScaling::*",
        "AWS::CloudFormation::CustomResource",
        "AWS::CloudWatch::Alarm",
        "AWS::EC2::SecurityGroupEgress",
        "AWS::ECS::CapacityProvider",
        "AWS::ECS::ClusterCapacityProviderAssociations",
        "AWS::Lambda::Alias",
        "AWS::Lambda::Url",
        "AWS::MSK::*",
        "AWS::S3::BucketPolicy",
        "AWS::Scheduler::*",
        "AWS::SecretsManager::*",
        "AWS::SQS::QueuePolicy",
        # moto would invoke the custom resource's Lambda function, which needs Docker.
        "Custom::*",
        # moto's event source mappings read only SQS queues and DynamoDB/Kinesis streams.
        "AWS::Lambda::EventSourceMapping.SelfManagedEventSource",
        "AWS::Lambda::EventSourceMapping.AmazonManagedKafkaEventSourceConfig",
        # moto reads CloudFormation's tags of a key as KMS's own shape (TagKey, TagValue) and fails on Key, Value.
        "AWS::KMS::Key.Tags",
    }
)

# LocalStack (localstack-core 2026.3, no auth token): the types of the template it has no CloudFormation resource
# provider for (its entry points `localstack.cloudformation.resource_providers` list the ones it has; the others
# ship in its licensed edition), custom resources (their Lambda would have to run, and its Lambda runtime needs
# Docker), and the Kafka event sources (its pollers read SQS, Kinesis and DynamoDB streams only).
LOCALSTACK_UNSUPPORTED: frozenset[str] = frozenset(
    {
        "AWS::ApiGatewayV2::*",
        "AWS::ApplicationAutoScaling::*",
        "AWS::AutoScaling::*",
        "AWS::CloudFormation::CustomResource",
        "AWS::EC2::EIP",
        "AWS::EC2::LaunchTemplate",
        "AWS::EC2::SecurityGroupEgress",
        "AWS::EC2::SecurityGroupIngress",
        "AWS::ECS::*",
        "AWS::MSK::*",
        "Custom::*",
        "AWS::Lambda::EventSourceMapping.SelfManagedEventSource",
        "AWS::Lambda::EventSourceMapping.AmazonManagedKafkaEventSourceConfig",
    }
)

# ${Name}, ${Name.Attribute}; "${!Literal}" is text, not a reference.
_SUB_REFERENCE = re.compile(r"\$\{(?!!)([^}.]+)(?:\.[^}]+)?\}")


def unsupported_reason(resource: Json, unsupported: Iterable[str]) -> str | None:
    """Why a local CloudFormation cannot create this resource (the first matching entry), or None."""
    resource_type = resource["Type"]
    properties = resource.get("Properties", {})
    for entry in sorted(unsupported):
        if entry.endswith("*"):
            if resource_type.startswith(entry[:-1]):
                return f"type {resource_type} is not supported ({entry})"
        elif "." in entry:
            entry_type, _, prop = entry.partition(".")
            if resource_type == entry_type and prop in properties:
                return f"{resource_type} with {prop} is not supported"
        elif resource_type == entry:
            return f"type {resource_type} is not supported"
    return None


def references(value: Any) -> Iterator[str]:
    """Every resource or parameter name a template value refers to (Ref, Fn::GetAtt, Fn::Sub), pseudo
    parameters (AWS::...) left out."""
    if isinstance(value, list):
        for item in value:
            yield from references(item)
        return
    if not isinstance(value, dict):
        return
    for key, inner in value.items():
        if key == "Ref" and isinstance(inner, str):
            if not inner.startswith("AWS::"):
                yield inner
        elif key == "Fn::GetAtt":
            yield (inner.split(".", 1)[0] if isinstance(inner, str) else inner[0])
            if isinstance(inner, list):
                yield from references(inner[1:])
        elif key == "Fn::Sub":
            text, variables = (inner, {}) if isinstance(inner, str) else (inner[0], inner[1])
            for name in _SUB_REFERENCE.findall(text):
                if name not in variables and not name.startswith("AWS::"):
                    yield name
            yield from references(variables)
        else:
            yield from references(inner)


def condition_references(value: Any) -> Iterator[str]:
    """Every condition name a value uses: Fn::If's first argument, {"Condition": name} inside conditions."""
    if isinstance(value, list):
        for item in value:
            yield from condition_references(item)
        return
    if not isinstance(value, dict):
        return
    for key, inner in value.items():
        if key == "Fn::If" and isinstance(inner, list) and inner:
            yield inner[0]
            yield from condition_references(inner[1:])
        elif key == "Condition" and isinstance(inner, str):
            yield inner
        else:
            yield from condition_references(inner)


def _depends_on(resource: Json) -> list[str]:
    depends = resource.get("DependsOn", [])
    return [depends] if isinstance(depends, str) else list(depends)


# A resource a local CloudFormation cannot create whose `Ref` its dependents only carry as a value read at run time
# (a secret's ARN in a function's environment): the dependents get this stand-in instead of going with it.
STAND_INS: Mapping[str, str] = {
    "AWS::SecretsManager::Secret": "arn:aws:secretsmanager:us-east-1:123456789012:secret:local"
}


def _replace_refs(value: Any, stand_ins: Mapping[str, str]) -> Any:
    """`value` with every {"Ref": id} of `stand_ins` replaced by its stand-in string."""
    if isinstance(value, list):
        return [_replace_refs(item, stand_ins) for item in value]
    if isinstance(value, dict):
        if set(value) == {"Ref"} and value["Ref"] in stand_ins:
            return stand_ins[value["Ref"]]
        return {key: _replace_refs(inner, stand_ins) for key, inner in value.items()}
    return value


def deployable_subset(template: Json, unsupported_types: Iterable[str]) -> tuple[Json, dict[str, str]]:
    """The template without the resources a local CloudFormation cannot create, nor anything that refers to one
    (Ref, Fn::GetAtt, Fn::Sub), transitively, but for a `Ref` of a `STAND_INS` type, which becomes its stand-in;
    outputs that refer to a dropped resource go too, and then the conditions and parameters nothing uses any more.
    Returns the subset and logical id -> why it was dropped.

    A `DependsOn` on a dropped resource is removed rather than followed: it orders creation and passes no value,
    so the dependent can still be created (the bucket depends on the queue policy only because S3 checks the
    destination when its notifications are set, which a local CloudFormation does not)."""
    unsupported = frozenset(unsupported_types)
    subset = copy.deepcopy(template)
    resources: dict[str, Json] = subset.get("Resources", {})
    dropped: dict[str, str] = {}
    for logical_id, resource in resources.items():
        reason = unsupported_reason(resource, unsupported)
        if reason:
            dropped[logical_id] = reason
    stood_in = {lid: STAND_INS[resources[lid]["Type"]] for lid in dropped if resources[lid]["Type"] in STAND_INS}
    if stood_in:
        for logical_id, resource in resources.items():
            if logical_id not in dropped:
                resources[logical_id] = _replace_refs(resource, stood_in)
    changed = True
    while changed:
        changed = False
        for logical_id, resource in resources.items():
            if logical_id in dropped:
                continue
            cause = next((name for name in references(resource) if name in dropped), None)
            if cause:
                dropped[logical_id] = f"refers to {cause}"
                changed = True
    for logical_id in dropped:
        del resources[logical_id]
    for resource in resources.values():
        if "DependsOn" in resource:
            kept = [name for name in _depends_on(resource) if name not in dropped]
            if kept:
                resource["DependsOn"] = kept
            else:
                del resource["DependsOn"]
    outputs = subset.get("Outputs", {})
    for name in [name for name, output in outputs.items() if any(ref in dropped for ref in references(output))]:
        del outputs[name]
    _prune_unused(subset)
    return subset, dropped


def _prune_unused(template: Json) -> None:
    """Remove conditions, then parameters, that nothing left in the template uses (a parameter without a
    default would otherwise still need a value)."""
    used_by_body = [template.get("Resources", {}), template.get("Outputs", {})]
    conditions: dict[str, Json] = template.get("Conditions", {})
    # Resources' and outputs' own "Condition" attributes are found the same way as {"Condition": name}.
    needed = set(condition_references(used_by_body))
    frontier = list(needed)
    while frontier:
        for name in condition_references(conditions.get(frontier.pop(), {})):
            if name not in needed:
                needed.add(name)
                frontier.append(name)
    for name in [name for name in conditions if name not in needed]:
        del conditions[name]
    parameters: dict[str, Json] = template.get("Parameters", {})
    used = set(references([*used_by_body, conditions]))
    for name in [name for name in parameters if name not in used]:
        del parameters[name]
    for section in ("Conditions", "Parameters", "Outputs"):
        if section in template and not template[section]:
            del template[section]


# Placeholder values by parameter type, for a local CloudFormation that does not look them up.
_PLACEHOLDERS = {
    "AWS::EC2::VPC::Id": "vpc-0123456789abcdef0",
    "AWS::EC2::Subnet::Id": "subnet-0123456789abcdef0",
    "AWS::EC2::SecurityGroup::Id": "sg-0123456789abcdef0",
    "AWS::EC2::Image::Id": "ami-0123456789abcdef0",
}


# A string parameter gets the first of these its AllowedPattern (if any) accepts: a word, an ARN, a host:port.
_STRING_PLACEHOLDERS = (
    "local",
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:local",
    "localhost:9092",
)


def _placeholder(name: str, spec: Json) -> str:
    if spec.get("AllowedValues"):
        return str(spec["AllowedValues"][0])
    parameter_type = spec.get("Type", "String")
    if parameter_type == "Number":
        return str(spec.get("MinValue", 1))
    inner = parameter_type.removeprefix("List<").removesuffix(">")
    if inner in _PLACEHOLDERS:
        return _PLACEHOLDERS[inner]
    pattern = spec.get("AllowedPattern")
    for value in _STRING_PLACEHOLDERS:
        if not pattern or re.fullmatch(pattern, value):
            return value
    raise ValueError(f"parameter {name} needs a value matching {pattern!r}: pass it in `values`")


def local_parameters(template: Json, values: Mapping[str, str] | None = None) -> list[dict[str, str]]:
    """CreateStack's `Parameters` for a local deployment: `values` where given, a placeholder for every other
    parameter without a default (its first allowed value, a number's minimum, an id of the right shape).
    A value for a parameter the (subset) template lacks is left out: the subset may have pruned it."""
    given = dict(values or {})
    result = []
    for name, spec in template.get("Parameters", {}).items():
        if name in given:
            result.append({"ParameterKey": name, "ParameterValue": given[name]})
        elif "Default" not in spec:
            result.append({"ParameterKey": name, "ParameterValue": _placeholder(name, spec)})
    return result
