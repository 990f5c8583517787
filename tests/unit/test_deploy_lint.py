"""cfn-lint (AWS's resource schemas, and its rules on references, policies and limits) finds nothing, errors nor
warnings, in the template `lorafoundry deploy synth` writes, for each Kafka mode (one of them without scale to
zero). This is what checks the parts a local CloudFormation cannot create (MSK, ECS on GPU, API Gateway v2)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from cfnlint.api import ManualArgs, Match, lint

from infra.deploy.config import DeployConfig, KafkaMode
from infra.deploy.storage import storage_fragment
from infra.deploy.template import render, synthesize

REGION = "us-east-1"
# One lint of the whole template takes 3 to 10 s on the 2-core build machine (cfn-lint validates every property
# against the resource schemas); far above that means the template grew a lot, or cfn-lint got slower.
LINT_BUDGET_S = 60.0


def describe(match: Match) -> str:
    """A finding as a reader wants it: rule id, where in the template, line, message."""
    return f"{match.rule.id} at {'/'.join(str(part) for part in match.path)} (line {match.linenumber}): {match.message}"


def lint_template(template: dict) -> list[str]:
    """cfn-lint's findings (its default level: errors and warnings) on a template, described."""
    return [describe(match) for match in lint(render(template), config=ManualArgs(regions=[REGION]))]


# Every Kafka mode, once each (a lint is the slow part of the unit tier); scale to zero changes only the workers'
# scaling, so one of them goes without it.
CASES = [(KafkaMode.MSK_SERVERLESS, False), (KafkaMode.MSK_PROVISIONED, True), (KafkaMode.EXTERNAL, True)]


@pytest.mark.parametrize(
    ("kafka", "scale_to_zero"), CASES, ids=[f"{m.value}-{'to-zero' if z else 'always-on'}" for m, z in CASES]
)
def test_cfn_lint_reports_nothing(
    kafka: KafkaMode, scale_to_zero: bool, record_property: Callable[[str, object], None]
) -> None:
    (template,) = synthesize(DeployConfig(kafka=kafka, scale_to_zero=scale_to_zero)).values()
    started = time.monotonic()
    findings = lint_template(template)
    elapsed = time.monotonic() - started
    record_property("cfn_lint_seconds", round(elapsed, 2))
    assert not findings, "cfn-lint:\n" + "\n".join(findings)
    assert elapsed < LINT_BUDGET_S, f"cfn-lint took {elapsed:.1f} s"


def test_a_finding_names_its_rule_and_path() -> None:
    """The message a failure shows is usable: the rule id and the path to the offending property (on the storage
    part alone, which lints in a fraction of the time)."""
    template = storage_fragment(DeployConfig()).template("storage only")
    assert lint_template(template) == []
    logical_id, table = next((lid, r) for lid, r in template["Resources"].items() if r["Type"].endswith("::Table"))
    table["Properties"]["BillingModee"] = "PAY_PER_REQUEST"
    findings = lint_template(template)
    assert any(
        finding.startswith(f"E3002 at Resources/{logical_id}/Properties/BillingModee (line ") for finding in findings
    ), findings
