"""The one way a worker process is served: set up once, then consume its topic until asked to stop.

Each worker (`python -m workers.generator`, `python -m workers.trainer`) describes only what is its own in a
`WorkerSpec`: the topic and consumer group it reads, and a set-up that warms what it needs and returns its
routes. Everything else (clients, the single model thread, the consumer loop, the ready line, a clean stop) is
here, once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from events.states import WorkerKind
from infra.consumer_lag import WorkerGroup
from infra.kafka import create_consumer, stop_consumer
from infra.repositories.workers import WorkerRepository
from infra.runtime import ServiceContext
from infra.settings import Settings
from workers.consumer import ConsumerLoop, Route
from workers.health import Heartbeat
from workers.registration import CurrentJob, WorkerRegistration
from workers.telemetry import worker_metrics
from workers.worker_state import WorkerState

log = logging.getLogger(__name__)

OnReady = Callable[[ConsumerLoop], None]


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker's set-up is given: the service's adapters, its single model thread, its id, and the event
    set when it is asked to stop (a job too long to finish within the stop timeout hands itself back on it, see
    `workers.consumer.HandBack`)."""

    settings: Settings
    context: ServiceContext
    executor: Executor
    worker_id: str
    stopping: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(frozen=True)
class WorkerSpec:
    """What differs between workers."""

    name: str  # "generator": the logger, the model thread's name and the state log
    topic: str
    group: Callable[[Settings], str]  # the consumer group, from the settings
    ready_line: str  # logged once ready; the local stack waits for it in the process's log
    setup: Callable[[WorkerSetup], Awaitable[dict[str, Route]]]  # warm up, then the routes


def default_worker_id() -> str:
    """Host, process and a random suffix: unique even when a pid is reused."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


async def serve(spec: WorkerSpec, settings: Settings, stop: asyncio.Event, on_ready: OnReady | None = None) -> None:
    """Set up once (clients, then the worker's own warm-up), then consume until `stop` is set. A job in
    progress when `stop` is set runs to its end; a killed worker's job is reclaimed after its lease."""
    worker_log = logging.getLogger(f"workers.{spec.name}")
    worker_id = settings.worker_id or default_worker_id()
    heartbeat = Heartbeat(settings.worker_heartbeat_path)
    context = await ServiceContext(settings).open()
    # On AWS the context resolved the brokers and credentials (infra.kafka_auth): the consumer uses the same.
    settings = context.settings
    # One thread: a pipeline is not safe to run twice at once, and one job at a time saturates a device.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=spec.name)
    group = WorkerGroup(spec.group(settings), spec.topic)
    consumer = create_consumer(settings, spec.topic, group_id=group.group_id)
    consumer_loop: ConsumerLoop | None = None
    current_job = CurrentJob()
    try:
        async with worker_metrics(settings, group) as metrics_server:
            registration = WorkerRegistration(
                WorkerRepository(context.clients.dynamodb, settings.workers_table),
                worker_id=worker_id,
                kind=WorkerKind(spec.name),
                group=group.group_id,
                interval_s=settings.worker_registry_interval_seconds,
                state=lambda: (consumer_loop.state if consumer_loop else WorkerState.STARTING).value,
                current_job=current_job,
                metrics_url=lambda: metrics_server.url if metrics_server else None,
            )
            async with registration.kept():
                # Warming a base model (a download, a load onto the GPU) takes minutes before the loop's own
                # beats begin.
                async with beating(heartbeat):
                    routes = await spec.setup(WorkerSetup(settings, context, executor, worker_id, stop))
                routes = current_job.tracking(routes)
                if settings.worker_scale_in_protection:
                    routes = TaskProtection(os.environ.get("ECS_AGENT_URI")).protecting(routes)
                await consumer.start()
                consumer_loop = ConsumerLoop(
                    consumer, context.producer, routes, name=f"{spec.name} {worker_id}", on_alive=heartbeat.beat
                )

                def ready(loop: ConsumerLoop) -> None:
                    worker_log.info("%s: %s", spec.ready_line, worker_id)
                    registration.nudge()
                    if on_ready:
                        on_ready(loop)

                await consumer_loop.run(stop, on_ready=ready)
    finally:
        await stop_consumer(consumer)
        await context.close()
        executor.shutdown(wait=True)
        if consumer_loop is not None and consumer_loop.state is WorkerState.STOPPING:
            consumer_loop.stopped()
            worker_log.info(
                "%s stopped: %d handled, %d dead-lettered",
                worker_id,
                consumer_loop.handled,
                consumer_loop.dead_lettered,
            )


class TaskProtection:
    """ECS task scale-in protection while a job runs, through the ECS agent's endpoint (ECS_AGENT_URI): a service
    scaling in then stops idle tasks, never one in the middle of a job. Without the endpoint (not on ECS) it does
    nothing; a failed call is logged and the job runs anyway (protection only spares work, it guards no data)."""

    # Bounds a protection a worker failed to lift (it died): ECS drops it by itself after this.
    EXPIRES_IN_MINUTES = 24 * 60

    def __init__(self, agent_uri: str | None, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.agent_uri = agent_uri
        self.transport = transport

    async def set(self, enabled: bool) -> None:
        """Protect the task (or stop protecting it)."""
        if not self.agent_uri:
            return
        body: dict[str, object] = {"ProtectionEnabled": enabled}
        if enabled:
            body["ExpiresInMinutes"] = self.EXPIRES_IN_MINUTES
        try:
            async with httpx.AsyncClient(transport=self.transport, timeout=5.0) as client:
                response = await client.put(f"{self.agent_uri}/task-protection/v1/state", json=body)
                response.raise_for_status()
        except httpx.HTTPError as exc:
            log.warning("task scale-in protection %s failed: %s", "on" if enabled else "off", exc)

    def protecting(self, routes: dict[str, Route]) -> dict[str, Route]:
        """The same routes, each job protected while it runs."""

        def wrap(handle: Callable[[Any], Awaitable[None]]) -> Callable[[Any], Awaitable[None]]:
            async def protected(event: Any) -> None:
                await self.set(True)
                try:
                    await handle(event)
                finally:
                    await self.set(False)

            return protected

        return {event_type: Route(route.model, wrap(route.handle)) for event_type, route in routes.items()}


HEARTBEAT_TASK = "worker heartbeat"


@contextlib.asynccontextmanager
async def beating(heartbeat: Heartbeat, interval_s: float = 5.0) -> AsyncIterator[None]:
    """Beat every `interval_s` while the body runs: the event loop is alive while it awaits."""

    async def beat() -> None:
        while True:
            heartbeat.beat()
            await asyncio.sleep(interval_s)  # a period between beats, not a synchronisation

    task = asyncio.create_task(beat(), name=HEARTBEAT_TASK)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def run_worker(spec: WorkerSpec) -> None:
    """A worker process's main: logging, then `serve` until SIGTERM or SIGINT sets its stop event."""
    import signal

    from infra.observability import configure_process
    from infra.settings import get_settings

    configure_process(get_settings(), f"lorafoundry-{spec.name}")

    async def run() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await serve(spec, settings=get_settings(), stop=stop)

    asyncio.run(run())
