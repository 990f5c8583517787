"""Ctrl-C stops the stack's Lambda-style processes cleanly: the S3-events poller, the two functions fed by the
lifecycle topic (portraits, webhooks) and the two schedules (webhook retries, reconciler) close what their
handler opened once for the process (a Kafka producer, aiohttp sessions, an event loop) and exit 0.

Each runs as the stack runs it (the same argv, through ManagedProcess), on a broker and resources of its own,
handles an event, and gets SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from events.records.jobs import GenerationJob
from events.states import GenerationStatus
from events.topics import JOB_LIFECYCLE
from events.usecases.lifecycle import lifecycle_event
from infra.bootstrap import bootstrap
from infra.kafka import admin_kwargs
from infra.local.kafka_source import READY_LINE as SOURCE_READY
from infra.local.processes import ManagedProcess
from infra.local.scheduler import READY_LINE as SCHEDULER_READY_LINE
from infra.local.sqs_poller import READY_LINE as POLLER_READY_LINE
from infra.local.stack import PORTRAITS_HANDLER, RECONCILER_HANDLER, S3_EVENTS_HANDLER, WEBHOOKS_HANDLER
from infra.runtime import ServiceContext
from infra.settings import Settings
from tests.conftest import Broker, make_settings
from tests.support import eventually, generation_request, settings_env

pytestmark = [pytest.mark.integration, pytest.mark.serial]

# What a process that leaves its clients open prints at exit, and what a failed close logs.
LEAKS = ("Unclosed AIOKafkaProducer", "Unclosed client session", "Task was destroyed but it is pending!", "Traceback")
# ManagedProcess.stop sends SIGTERM and waits this long before SIGKILL (which would make the exit code -9).
STOP_GRACE_S = 10.0


@dataclass
class Isolated:
    """A broker and resources nothing else uses, and a context over them to make events with."""

    settings: Settings
    context: ServiceContext
    broker: Broker


@pytest.fixture
async def isolated(moto_endpoint: str, tmp_path: Path) -> AsyncIterator[Isolated]:
    broker = Broker(tmp_path)
    broker.start()
    settings = make_settings(
        moto_endpoint,
        broker,
        f"lfs-{secrets.token_hex(3)}",
        kafka_portraits_consumer_group=f"stop-prt-{secrets.token_hex(3)}",
        kafka_webhooks_consumer_group=f"stop-whk-{secrets.token_hex(3)}",
    )
    await bootstrap(settings)
    context = await ServiceContext(settings).open()
    try:
        yield Isolated(settings, context, broker)
    finally:
        await context.close()
        broker.stop()


def stack_argvs(settings: Settings) -> dict[str, tuple[list[str], str]]:
    """Each process's argv and ready line, as infra/local/stack.py starts them."""

    def topic_source(handler: str, group: str) -> list[str]:
        return ["-m", "infra.local.kafka_source", "--handler", handler, "--topic", JOB_LIFECYCLE, "--group", group]

    def schedule(handler: str, every_s: float, rule: str) -> list[str]:
        return ["-m", "infra.local.scheduler", "--handler", handler, "--every", str(every_s), "--rule", rule]

    commands = {
        "poller": (["-m", "infra.local.sqs_poller", "--handler", S3_EVENTS_HANDLER], POLLER_READY_LINE),
        "portraits": (
            topic_source(PORTRAITS_HANDLER, settings.kafka_portraits_consumer_group),
            SOURCE_READY,
        ),
        "webhooks": (topic_source(WEBHOOKS_HANDLER, settings.kafka_webhooks_consumer_group), SOURCE_READY),
        "webhooks-sweep": (
            schedule(WEBHOOKS_HANDLER, settings.webhook_sweep_interval_seconds, "webhooks-sweep"),
            SCHEDULER_READY_LINE,
        ),
        "reconciler": (
            schedule(RECONCILER_HANDLER, settings.reconcile_interval_seconds, "reconciler"),
            SCHEDULER_READY_LINE,
        ),
    }
    return {name: ([sys.executable, *argv], ready) for name, (argv, ready) in commands.items()}


def connected_to(pid: int, port: int) -> bool:
    """Whether process `pid` holds an established TCP connection to `port` (its sockets, read from /proc)."""
    sockets = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                sockets.add(target.removeprefix("socket:[").removesuffix("]"))
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        established = fields[3] == "01"
        if established and int(fields[2].rsplit(":", 1)[1], 16) == port and fields[9] in sockets:
            return True
    return False


async def queue_drained(context: ServiceContext) -> bool:
    """Whether the notifications queue holds no message, visible or in flight (all handled and deleted)."""
    sqs = context.clients.sqs
    url = (await sqs.get_queue_url(QueueName=context.settings.notifications_queue))["QueueUrl"]
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = (await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names))["Attributes"]
    return all(attributes[name] == "0" for name in names)


async def committed_past(settings: Settings, group: str, tp: TopicPartition, offset: int) -> bool:
    """Whether consumer group `group` has committed `tp` beyond `offset` (the handler took that record)."""
    admin = AIOKafkaAdminClient(**admin_kwargs(settings))
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group, partitions=[tp])
    finally:
        await admin.close()
    committed = offsets.get(tp)
    return committed is not None and committed.offset > offset


async def handle_one_event_each(env: Isolated, processes: dict[str, ManagedProcess]) -> None:
    """Give every process an event to handle (cheap ones: nothing to do for the job named) and wait until
    each has: its handler then has its clients open."""
    settings, context = env.settings, env.context
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": settings.bucket}
    url = (await context.clients.sqs.get_queue_url(QueueName=settings.notifications_queue))["QueueUrl"]
    await context.clients.sqs.send_message(QueueUrl=url, MessageBody=json.dumps(test_event))
    job_id = f"job_stop_{secrets.token_hex(4)}"
    # Never stored: an event about a job no handler knows, which each handles by doing nothing.
    job = GenerationJob(jobId=job_id, tenantId="tenant-stop", request=generation_request(job_id))
    event = lifecycle_event(job, GenerationStatus.COMPLETED, "/tests/clean-stop")
    sent = await context.producer.send_and_wait(JOB_LIFECYCLE, event.to_json_bytes(), key=job_id.encode())
    tp = TopicPartition(sent.topic, sent.partition)

    await eventually(lambda: queue_drained(context), bool, what="the poller to handle its message")
    for group in (settings.kafka_portraits_consumer_group, settings.kafka_webhooks_consumer_group):
        await eventually(lambda g=group: committed_past(settings, g, tp, sent.offset), bool, what=f"{group}")
    # A schedule fires at once when it starts, and its handler reads DynamoDB: the process then holds a pooled
    # connection to moto, which only the handler's clients open.
    # LocalStack's server (hypercorn) closes idle keep-alive connections after 5 s: no pooled connection to look for.
    if os.environ.get("LF_TEST_AWS") == "localstack":
        return
    moto_port = urlparse(settings.aws_endpoint_url).port
    for name in ("webhooks-sweep", "reconciler"):
        pid = processes[name].process.pid  # type: ignore[union-attr]

        async def connected(pid: int = pid) -> bool:
            return connected_to(pid, moto_port)

        await eventually(connected, bool, what=f"{name}'s handler to open its clients")


async def test_sigterm_stops_every_function_process_cleanly(isolated: Isolated, tmp_path: Path) -> None:
    env = settings_env(isolated.settings)
    commands = stack_argvs(isolated.settings)
    # All started before any is waited on, as the stack starts them.
    processes = {
        name: ManagedProcess(name, argv, tmp_path / f"{name}.log", env=env).start()
        for name, (argv, _) in commands.items()
    }
    try:
        for name, process in processes.items():
            line = commands[name][1]
            await asyncio.to_thread(process.wait_ready, lambda p=process, line=line: p.log_contains(line), 60)
        await handle_one_event_each(isolated, processes)

        # Stopped one by one, last started first, as the stack stops them on Ctrl-C; every process is judged.
        problems = []
        for name, process in reversed(processes.items()):
            started = time.monotonic()
            code = await asyncio.to_thread(process.stop, STOP_GRACE_S)
            elapsed = time.monotonic() - started
            log = process.log_path.read_text(errors="replace")
            found = [leak for leak in LEAKS if leak in log]
            if code != 0 or elapsed >= STOP_GRACE_S or found:
                problems.append(f"{name}: exit {code} after {elapsed:.1f}s, logged {found}; log:\n{log}")
        assert not problems, "\n".join(problems)
    finally:
        for process in processes.values():
            process.stop()
