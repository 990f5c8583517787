"""Schemathesis over every operation of the served OpenAPI document, against the API running as it runs in the
embedded stack (uvicorn, real moto, a real Tansu broker): no answer is a 5xx, and every answer matches what
the document declares (status, content type, headers, body schema).

Bounded: a fixed number of examples per operation, derandomized so a failure reproduces. Path ids are drawn
from random strings and from records that exist (a model with a stored and a pending presigned training
image), since most faults live behind a valid id. The API gets a broker of its own that no worker consumes,
so the jobs the fuzzer creates cost nothing.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from infra.bootstrap import bootstrap
from infra.local.processes import ManagedProcess, free_port
from infra.local.stack import API_APP, api_healthy
from infra.settings import Settings
from tests.conftest import Broker, make_settings
from tests.journeys import png
from tests.support import bearer, settings_env

pytestmark = pytest.mark.e2e

EXAMPLES_PER_OPERATION = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


class FuzzTarget:
    """The running API and ids of records that exist behind it."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key
        self.ids: dict[str, list[str]] = {}

    def seed(self) -> None:
        """A model with one stored training image and one pending presigned upload (the 500s lived there)."""
        with httpx.Client(base_url=self.url, headers=bearer(self.key), timeout=30) as client:
            model = client.post("/v1/models", json={"name": "fuzzed"}).raise_for_status().json()
            model_id = model["modelId"]
            stored = client.post(
                f"/v1/models/{model_id}/training-data",
                content=png((10, 200, 30)),
                headers={"Content-Type": "application/octet-stream"},
            ).raise_for_status()
            pending = client.post(f"/v1/models/{model_id}/training-data/presigned", json={}).raise_for_status()
            upload = client.post(
                "/v1/uploads", content=png((200, 10, 30)), headers={"Content-Type": "image/png"}
            ).raise_for_status()
        self.ids = {
            "modelId": [model_id],
            "dataId": [stored.json()["dataId"], pending.json()["dataId"]],
            "key": [upload.json()["key"]],
        }


@pytest.fixture(scope="module")
def fuzz_target(moto_endpoint: str, log_dir: Path) -> Iterator[FuzzTarget]:
    broker = Broker(log_dir / "fuzz")
    broker.start()
    key = f"lf_fuzz_{secrets.token_hex(12)}"
    fuzz_settings = make_settings(
        moto_endpoint,
        broker,
        f"lfz-{secrets.token_hex(3)}",
        dev_api_key=key,
        dev_signing_secret=f"lfs_fuzz_{secrets.token_hex(12)}",
    )
    asyncio.run(bootstrap(fuzz_settings))
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", API_APP, "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    api = ManagedProcess("fuzz-api", argv, log_dir / "fuzz" / "api.log", env=settings_env(fuzz_settings)).start()
    url = f"http://127.0.0.1:{port}"
    try:
        api.wait_ready(lambda: api_healthy(url), 60)
        target = FuzzTarget(url, key)
        target.seed()
        EXISTING_IDS.update(target.ids)
        yield target
    finally:
        api.stop()
        broker.stop()


def application_document() -> dict[str, Any]:
    """The OpenAPI document the API serves, built without reaching any backend (a test checks that it is the
    served one): schemathesis' lazy fixture loader fails on this pytest, so the schema is known at collection."""
    from functions.api.app import create_app

    return create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]


schema = schemathesis.openapi.from_dict(application_document())
# Filled in by the fuzz target fixture before the first case is drawn.
EXISTING_IDS: dict[str, list[str]] = {}


@schema.hook
def flatmap_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> st.SearchStrategy:
    # Half the time an id that exists, so the handlers behind the 404 are fuzzed too.
    if not path_parameters:
        return st.just(path_parameters)
    existing = {name: st.sampled_from(EXISTING_IDS[name]) for name in path_parameters if name in EXISTING_IDS}
    if not existing:
        return st.just(path_parameters)
    return st.just(path_parameters) | st.fixed_dictionaries(
        {name: existing.get(name, st.just(value)) for name, value in path_parameters.items()}
    )


def test_the_fuzzed_document_is_the_served_one(fuzz_target: FuzzTarget) -> None:
    served = httpx.get(f"{fuzz_target.url}/openapi.json").json()
    assert served == application_document()
    operations = sum(len(methods) for methods in served["paths"].values())
    assert operations >= 30, f"the served document has only {operations} operations"


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_operation_answers_5xx_or_off_its_schema(case: Any, fuzz_target: FuzzTarget) -> None:
    case.call_and_validate(base_url=fuzz_target.url, headers=bearer(fuzz_target.key), checks=CHECKS, timeout=30)
