"""Fixtures: a real moto server and a real Tansu broker on free loopback ports, started once per session.

Nothing here mocks S3, DynamoDB or Kafka in-process: the code under test talks HTTP and the Kafka protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.local.processes import ManagedProcess, free_port
from infra.local.stack import start_moto, start_tansu
from infra.settings import Settings

MODEL_CACHE = Path(__file__).resolve().parent.parent / ".pytest_cache" / "models"


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("logs")


@pytest.fixture(scope="session")
def moto_endpoint(log_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto server (S3, DynamoDB, SQS) in its own process, over HTTP; LocalStack instead when
    LF_TEST_AWS=localstack (`make test-localstack`)."""
    if os.environ.get("LF_TEST_AWS") == "localstack":
        from tests.localstack.server import start_localstack

        localstack = start_localstack(log_dir / "localstack.log", tmp_path_factory.mktemp("localstack"))
        try:
            yield localstack.endpoint
        finally:
            localstack.stop()
        return
    port = free_port()
    process = start_moto("127.0.0.1", port, log_dir / "moto.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.stop()


class Broker:
    """A Tansu broker that a test can restart (memory storage: a restart forgets everything)."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.log_dir = log_dir
        self.process: ManagedProcess | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = start_tansu("127.0.0.1", self.port, self.log_dir / "tansu.log")

    def stop(self) -> None:
        if self.process:
            self.process.stop()


@pytest.fixture(scope="session")
def broker(log_dir: Path) -> Iterator[Broker]:
    """A real Tansu broker on a free port."""
    broker = Broker(log_dir)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def make_settings(moto_endpoint: str, broker: Broker, prefix: str, **overrides: object) -> Settings:
    """Settings for one isolated set of resources (own bucket, tables, queue) on the shared servers."""
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        aws_endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # type: ignore[arg-type]
        kafka_bootstrap_servers=broker.bootstrap_servers,
        kafka_idempotence=False,
        resource_prefix=prefix,
        model_cache_dir=MODEL_CACHE,
        # A session's tenants pile up jobs no worker takes (on purpose, in failure tests): the active-job quotas
        # would refuse unrelated tests late in a run. tests/integration/test_quotas.py sets its own per tenant
        # (a tenant's override applies over a default of 0).
        quota_active_generations=0,
        quota_active_trainings=0,
        # And the per-key rate limit's lease writes would add a moto round trip to most requests of the suite; its
        # own tests (test_quotas, the leases' unit tests) turn it on per tenant.
        quota_requests_per_second=0,
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="session")
def settings(moto_endpoint: str, broker: Broker, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The session's settings; `broken` is a base model whose weights do not exist (for failure paths)."""
    missing = tmp_path_factory.mktemp("no-model") / "missing"
    return make_settings(
        moto_endpoint,
        broker,
        f"lft-{secrets.token_hex(3)}",
        base_models={"broken": str(missing)},
        # Seed 000's example names a base model of another service: an operator alias makes it work.
        base_model_aliases={"realm-base-v2.1": "tiny-sd"},
        kafka_consumer_group=f"gen-{secrets.token_hex(3)}",
        kafka_training_consumer_group=f"trn-{secrets.token_hex(3)}",
        kafka_portraits_consumer_group=f"prt-{secrets.token_hex(3)}",
        worker_lease_seconds=30,
    )


@pytest.fixture(scope="session")
async def bootstrapped(settings: Settings) -> Settings:
    from infra.bootstrap import bootstrap

    await bootstrap(settings)
    return settings


@pytest.fixture(scope="session")
async def context(bootstrapped: Settings) -> AsyncIterator:
    from infra.runtime import ServiceContext

    context = await ServiceContext(bootstrapped).open()
    try:
        yield context
    finally:
        await context.close()


SIGNING_SECRET = f"lfs_test_{secrets.token_hex(16)}"


@pytest.fixture(scope="session")
async def api_key(context) -> str:
    """A key of tenant 'tenant-a', whose signing secret is SIGNING_SECRET."""
    key = f"lf_test_{secrets.token_hex(16)}"
    await context.api_keys.put(key, tenant_id="tenant-a", name="tests", signing_secret=SIGNING_SECRET)
    return key


@pytest.fixture(scope="session")
async def other_api_key(context) -> str:
    """A key of another tenant, 'tenant-b'."""
    key = f"lf_test_{secrets.token_hex(16)}"
    await context.api_keys.put(key, tenant_id="tenant-b", name="tests")
    return key


@pytest.fixture(scope="session")
async def app(bootstrapped: Settings) -> AsyncIterator:
    from functions.api.app import create_app

    app = create_app(bootstrapped)
    try:
        yield app
    finally:
        if app.state.context is not None:
            await app.state.context.close()


@pytest.fixture(scope="session")
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the real app (ASGI transport), which talks to the real moto server and broker."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        yield client


@contextlib.contextmanager
def running_poller(settings: Settings) -> Iterator[threading.Event]:
    """The local event source mapping SQS -> functions.s3_events, in a thread, for the block."""
    from functions.s3_events.handler import S3EventsLambda
    from infra.local.sqs_poller import SqsPoller

    handler = S3EventsLambda(lambda: settings)
    sqs_poller = SqsPoller(settings, settings.notifications_queue, handler)
    stop = threading.Event()
    thread = threading.Thread(target=sqs_poller.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(30)
        # The handler's own loop cannot run inside a running one (async fixtures): close it from a thread.
        closer = threading.Thread(target=handler.close)
        closer.start()
        closer.join(30)


@pytest.fixture(scope="session")
def poller(bootstrapped: Settings) -> Iterator[threading.Event]:
    """The session's S3-notification poller."""
    with running_poller(bootstrapped) as stop:
        yield stop


@contextlib.asynccontextmanager
async def running_service(
    start: Callable[[asyncio.Event, Callable[[Any], None]], Awaitable[None]], what: str, stop_timeout_s: float
) -> AsyncIterator[Any]:
    """Run `start(stop, on_ready)` as a task in this loop until the block ends; yields what it was ready
    with. A start-up failure raises its own error. The stop is bounded: a task that does not end in time
    is canceled (every consumer here commits as it goes, so nothing is lost)."""
    stop = asyncio.Event()
    ready: asyncio.Future = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(start(stop, ready.set_result))
    done, _ = await asyncio.wait({task, ready}, timeout=180, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()  # start-up failed: raise its error
    assert ready in done, f"{what} did not become ready in time"
    try:
        yield ready.result()
    finally:
        stop.set()
        finished, _ = await asyncio.wait({task}, timeout=stop_timeout_s)
        if finished:
            task.result()
        else:
            # Tansu sometimes leaves a consumer's last fetch unanswered at session end, and aiokafka's stop
            # then waits on it past any bound.
            task.cancel()


@pytest.fixture(scope="session")
async def worker(bootstrapped: Settings, poller) -> AsyncIterator:
    """A generator worker consuming in this event loop, its model work in its own thread."""
    from workers.generator.__main__ import serve

    async with running_service(lambda stop, ready: serve(bootstrapped, stop, on_ready=ready), "worker", 60) as loop:
        yield loop


@pytest.fixture(scope="session")
async def trainer(bootstrapped: Settings, poller) -> AsyncIterator:
    """A trainer worker consuming in this event loop, its training in its own thread."""
    from workers.trainer.__main__ import serve

    async with running_service(lambda stop, ready: serve(bootstrapped, stop, on_ready=ready), "trainer", 120) as loop:
        yield loop


@contextlib.asynccontextmanager
async def lifecycle_source(settings: Settings, handler: Any, group: str, what: str) -> AsyncIterator[Any]:
    """The lifecycle topic -> a Lambda handler, fed the way Lambda's Kafka event source feeds it."""
    from events.topics import JOB_LIFECYCLE
    from infra.local.kafka_source import run_kafka_source

    def start(stop: asyncio.Event, ready: Callable[[Any], None]) -> Awaitable[None]:
        return run_kafka_source(settings, JOB_LIFECYCLE, group, handler, stop, on_ready=lambda: ready(handler))

    try:
        async with running_service(start, what, 30):
            yield handler
    finally:
        await asyncio.to_thread(handler.close)


@pytest.fixture(scope="session")
async def portraits_source(bootstrapped: Settings, poller) -> AsyncIterator:
    """functions.portraits on the lifecycle topic."""
    from functions.portraits.handler import PortraitsLambda

    handler = PortraitsLambda(lambda: bootstrapped)
    async with lifecycle_source(bootstrapped, handler, bootstrapped.kafka_portraits_consumer_group, "portraits"):
        yield handler


@dataclass
class IsolatedApi:
    """The API on resources and a broker of its own, with one tenant's key and the S3-notification poller."""

    settings: Settings
    broker: Broker
    context: Any
    client: httpx.AsyncClient
    api_key: str


@contextlib.asynccontextmanager
async def isolated_api(
    moto_endpoint: str, log_dir: Path, prefix: str, tenant: str, **overrides: object
) -> AsyncIterator[IsolatedApi]:
    """For tests that restart or flood a broker, or run workers of their own: the command topics are shared by
    name, so the session's workers must not see these jobs. Everything is closed and stopped after."""
    from functions.api.app import create_app
    from infra.bootstrap import bootstrap
    from infra.runtime import ServiceContext

    broker = Broker(log_dir)
    broker.start()
    try:
        settings = make_settings(moto_endpoint, broker, f"{prefix}-{secrets.token_hex(3)}", **overrides)
        await bootstrap(settings)
        context = await ServiceContext(settings).open()
        app = create_app(settings)
        try:
            api_key = f"lf_test_{secrets.token_hex(16)}"
            await context.api_keys.put(api_key, tenant_id=tenant, name=prefix)
            with running_poller(settings):
                async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as c:
                    yield IsolatedApi(settings, broker, context, c, api_key)
        finally:
            if app.state.context is not None:
                await app.state.context.close()
            await context.close()
    finally:
        broker.stop()
