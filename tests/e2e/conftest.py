"""End-to-end fixtures: in the LocalStack lane (LF_TEST_AWS=localstack), `lorafoundry up` is pointed at the
session's LocalStack instead of starting moto."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.e2e import up_process


@pytest.fixture(scope="session", autouse=True)
def external_aws_for_up(request: pytest.FixtureRequest) -> Iterator[None]:
    """Outside the lane nothing changes (and no server starts); in it, the session's LocalStack."""
    if os.environ.get("LF_TEST_AWS") != "localstack":
        yield
        return
    up_process.external_aws_endpoint = request.getfixturevalue("moto_endpoint")
    try:
        yield
    finally:
        up_process.external_aws_endpoint = None
