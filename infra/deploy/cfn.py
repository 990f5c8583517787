"""CloudFormation's building blocks as plain data: intrinsic functions, and a `Fragment` of a template that
one module contributes (resources, parameters, conditions, outputs) and that `infra.deploy.template` merges.

Templates are JSON-shaped dicts rather than objects of a modelling library: every property name is checked
against CloudFormation's own schema by cfn-lint in the tests, and the local deployment test feeds the same
dict to a local CloudFormation, so there is nothing between what the code builds and what AWS receives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]

NO_VALUE: Json = {"Ref": "AWS::NoValue"}
REGION: Json = {"Ref": "AWS::Region"}
ACCOUNT: Json = {"Ref": "AWS::AccountId"}
PARTITION: Json = {"Ref": "AWS::Partition"}
STACK_NAME: Json = {"Ref": "AWS::StackName"}


def ref(logical_id: str) -> Json:
    """`Ref` of a resource or parameter."""
    return {"Ref": logical_id}


def get_att(logical_id: str, attribute: str) -> Json:
    """`Fn::GetAtt` of a resource's attribute."""
    return {"Fn::GetAtt": [logical_id, attribute]}


def sub(text: str, **variables: Any) -> Json:
    """`Fn::Sub`, with explicit variables when given."""
    return {"Fn::Sub": [text, variables] if variables else text}


def join(delimiter: str, values: list[Any] | Json) -> Json:
    """`Fn::Join`."""
    return {"Fn::Join": [delimiter, values]}


def if_(condition: str, when_true: Any, when_false: Any) -> Json:
    """`Fn::If` on a named condition."""
    return {"Fn::If": [condition, when_true, when_false]}


def equals(a: Any, b: Any) -> Json:
    """`Fn::Equals`, for conditions."""
    return {"Fn::Equals": [a, b]}


def tags(**values: str) -> list[Json]:
    """CloudFormation's tag list."""
    return [{"Key": key, "Value": value} for key, value in values.items()]


class DuplicateLogicalId(ValueError):
    """Two parts of the template named a resource, parameter, condition or output alike."""


def _merge_into(target: dict[str, Any], source: dict[str, Any], what: str) -> None:
    for key, value in source.items():
        if key in target and target[key] != value:
            raise DuplicateLogicalId(f"{what} {key!r} is defined twice, differently")
        target[key] = value


@dataclass
class Fragment:
    """The part of a template one module contributes."""

    resources: dict[str, Json] = field(default_factory=dict)
    parameters: dict[str, Json] = field(default_factory=dict)
    conditions: dict[str, Json] = field(default_factory=dict)
    outputs: dict[str, Json] = field(default_factory=dict)

    def add(
        self,
        logical_id: str,
        resource_type: str,
        properties: Json | None = None,
        **attributes: Any,
    ) -> str:
        """Add a resource (attributes: DependsOn, Condition, DeletionPolicy, UpdateReplacePolicy, ...);
        returns its logical id, for `ref`/`get_att`."""
        if logical_id in self.resources:
            raise DuplicateLogicalId(f"resource {logical_id!r} is defined twice")
        resource: Json = {"Type": resource_type, **attributes}
        if properties:
            resource["Properties"] = properties
        self.resources[logical_id] = resource
        return logical_id

    def parameter(self, name: str, description: str, **spec: Any) -> str:
        """Add a deploy-time parameter (default type String); returns its name, for `ref`."""
        _merge_into(self.parameters, {name: {"Type": "String", "Description": description, **spec}}, "parameter")
        return name

    def condition(self, name: str, expression: Json) -> str:
        """Add a named condition; returns its name, for `if_` and `Condition=`."""
        _merge_into(self.conditions, {name: expression}, "condition")
        return name

    def output(self, name: str, value: Any, description: str, **spec: Any) -> None:
        """Add a stack output."""
        _merge_into(self.outputs, {name: {"Value": value, "Description": description, **spec}}, "output")

    def merge(self, other: Fragment) -> Fragment:
        """Add everything of `other` into this fragment (refusing a clashing name); returns self."""
        for logical_id in other.resources:
            if logical_id in self.resources:
                raise DuplicateLogicalId(f"resource {logical_id!r} is defined twice")
        self.resources.update(other.resources)
        _merge_into(self.parameters, other.parameters, "parameter")
        _merge_into(self.conditions, other.conditions, "condition")
        _merge_into(self.outputs, other.outputs, "output")
        return self

    def template(self, description: str) -> Json:
        """The whole template."""
        template: Json = {"AWSTemplateFormatVersion": "2010-09-09", "Description": description}
        for section, content in (
            ("Parameters", self.parameters),
            ("Conditions", self.conditions),
            ("Resources", self.resources),
            ("Outputs", self.outputs),
        ):
            if content:
                template[section] = content
        return template
