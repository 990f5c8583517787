"""`lorafoundry deploy ...` and `lorafoundry package ...`: registered on the one command-line parser."""

from __future__ import annotations

import argparse
from pathlib import Path

from infra.deploy.config import DeployConfig, KafkaMode


def cmd_synth(args: argparse.Namespace) -> int:
    """Write the CloudFormation template(s) into --out, offline."""
    from infra.deploy.template import write_templates

    config = DeployConfig(prefix=args.prefix, kafka=KafkaMode(args.kafka), scale_to_zero=not args.no_scale_to_zero)
    for path in write_templates(config, Path(args.out)):
        print(path)
    return 0


def cmd_package_lambda(args: argparse.Namespace) -> int:
    """Build the functions' deployment package into --out."""
    from infra.deploy.lambda_package import build_lambda_package

    report = build_lambda_package(Path(args.out))
    print(report.summary())
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `deploy` and `package` command groups."""
    deploy = sub.add_parser("deploy", help="the AWS deployment (CloudFormation)")
    deploy_sub = deploy.add_subparsers(dest="deploy_command", required=True)
    synth = deploy_sub.add_parser("synth", help="write the CloudFormation template(s), offline")
    synth.add_argument("--out", required=True, help="folder to write the template(s) into")
    synth.add_argument("--prefix", default="lorafoundry", help="resource name prefix (LF_RESOURCE_PREFIX)")
    synth.add_argument(
        "--kafka",
        choices=[mode.value for mode in KafkaMode],
        default=KafkaMode.MSK_SERVERLESS.value,
        help="msk-serverless (IAM auth), msk-provisioned (SCRAM) or external (bring your own cluster, SCRAM)",
    )
    synth.add_argument("--no-scale-to-zero", action="store_true", help="keep at least one task of each worker")
    synth.set_defaults(func=cmd_synth)

    package = sub.add_parser("package", help="build deployment artifacts")
    package_sub = package.add_subparsers(dest="package_command", required=True)
    lambda_ = package_sub.add_parser("lambda", help="the functions' zip, without torch, within Lambda's limits")
    lambda_.add_argument("--out", required=True, help="folder to write the package into")
    lambda_.set_defaults(func=cmd_package_lambda)
