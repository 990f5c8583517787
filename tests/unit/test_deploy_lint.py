"""cfn-lint (AWS's resource schemas, and its rules on references, policies and limits) finds nothing, errors nor
warnings, in the template `lorafoundry deploy synth` writes, for each Kafka mode (and once without scale to
zero). This is what checks the parts a local CloudFormation cannot create (MSK, ECS on GPU, API Gateway v2)."""

from __future__ import annotations

import time

import pytest
from cfnlint.api import ManualArgs, Match, lint

from infra.deploy.config import DeployConfig, KafkaMode
from infra.deploy.template import render, synthesize

REGION = "us-east-1"
# Each lint takes about a second on the build machine; well above that means the template grew a lot.
LINT_BUDGET_S = 15.0


def describe(match: Match) -> str:
    """A finding as a reader wants it: rule id, where in the template, line, message."""
    return f"{match.rule.id} at {'/'.join(str(part) for part in match.path)} (line {match.linenumber}): {match.message}"


def lint_template(template: dict) -> list[str]:
    """cfn-lint's findings (its default level: errors and warnings) on a template, described."""
    return [describe(match) for match in lint(render(template), config=ManualArgs(regions=[REGION]))]


# Every Kafka mode; scale to zero changes only the workers' scaling, so once without it is enough.
CASES = [(mode, True) for mode in KafkaMode] + [(KafkaMode.MSK_SERVERLESS, False)]


@pytest.mark.parametrize(
    ("kafka", "scale_to_zero"), CASES, ids=[f"{m.value}-{'to-zero' if z else 'always-on'}" for m, z in CASES]
)
def test_cfn_lint_reports_nothing(kafka: KafkaMode, scale_to_zero: bool) -> None:
    (template,) = synthesize(DeployConfig(kafka=kafka, scale_to_zero=scale_to_zero)).values()
    started = time.monotonic()
    findings = lint_template(template)
    elapsed = time.monotonic() - started
    assert not findings, "cfn-lint:\n" + "\n".join(findings)
    assert elapsed < LINT_BUDGET_S, f"cfn-lint took {elapsed:.1f} s"


def test_a_finding_names_its_rule_and_path() -> None:
    """The message a failure shows is usable: the rule id and the path to the offending property."""
    (template,) = synthesize(DeployConfig()).values()
    table = next(r for r in template["Resources"].values() if r["Type"] == "AWS::DynamoDB::Table")
    table["Properties"]["BillingModee"] = "PAY_PER_REQUEST"
    logical_id = next(lid for lid, r in template["Resources"].items() if r is table)
    findings = lint_template(template)
    assert any(
        finding.startswith(f"E3002 at Resources/{logical_id}/Properties/BillingModee (line ") for finding in findings
    ), findings
