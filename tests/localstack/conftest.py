"""The LocalStack lane's own tests run only in the lane (`make test-localstack`, LF_TEST_AWS=localstack), where
the session's `moto_endpoint` is LocalStack; anywhere else they are skipped, saying how to run them."""

from __future__ import annotations

import os
from pathlib import Path

import boto3
import pytest

HERE = Path(__file__).resolve().parent
IN_LANE = os.environ.get("LF_TEST_AWS") == "localstack"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip this directory's tests outside the lane (this hook sees the whole session's items)."""
    if IN_LANE:
        return
    skip = pytest.mark.skip(reason="LocalStack lane only: make test-localstack (LF_TEST_AWS=localstack)")
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def localstack_endpoint(moto_endpoint: str) -> str:
    """The session's LocalStack (tests/conftest.py starts it in place of moto in the lane)."""
    return moto_endpoint


@pytest.fixture(scope="session")
def aws(localstack_endpoint: str):
    """boto3 clients of LocalStack, by service name."""
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    return lambda service: session.client(service, endpoint_url=localstack_endpoint)  # type: ignore[call-overload]
