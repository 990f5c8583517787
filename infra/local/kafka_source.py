"""Plays Lambda's Kafka event source mapping locally: consume a topic as a consumer group, hand each batch
to a Lambda-style handler in the event shape Lambda sends, commit only after the handler succeeded. A
handler that raises gets the same batch again (after a pause), as Lambda retries a failed batch; a handler
that answers with a partial batch response (`batchItemFailures`, as the mapping's ReportBatchItemFailures
asks) has each reported partition committed up to, and read again from, the reported offset.

The handler is named by a string (`module.attribute`), so this module imports nothing from `functions/`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import logging
import signal
from collections.abc import Callable
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from infra.kafka import create_consumer
from infra.local.sqs_poller import Handler, process_handler
from infra.observability import configure_process, service_for_handler
from infra.settings import Settings, get_settings

log = logging.getLogger(__name__)

READY_LINE = "kafka event source ready"
RETRY_PAUSE_S = 1.0
STOP_TIMEOUT_S = 10.0


def lambda_kafka_event(batch: dict[TopicPartition, list[ConsumerRecord]], bootstrap_servers: str) -> dict[str, Any]:
    """The event Lambda builds for a batch of Kafka records (self-managed Kafka source)."""
    return {
        "eventSource": "SelfManagedKafka",
        "bootstrapServers": bootstrap_servers,
        "records": {
            f"{tp.topic}-{tp.partition}": [
                {
                    "topic": r.topic,
                    "partition": r.partition,
                    "offset": r.offset,
                    "timestamp": r.timestamp,
                    "timestampType": "CREATE_TIME",
                    "key": base64.b64encode(r.key).decode() if r.key is not None else None,
                    "value": base64.b64encode(r.value).decode() if r.value is not None else None,
                    "headers": [{name: list(value)} for name, value in (r.headers or [])],
                }
                for r in records
            ]
            for tp, records in batch.items()
        },
    }


def resume_offsets(batch: dict[TopicPartition, list[ConsumerRecord]], response: Any) -> dict[TopicPartition, int]:
    """Where each partition of a handled batch goes on: past its last record, or, for a partition the handler's
    partial batch response reports ({"itemIdentifier": {"partition": "<topic>-<n>", "offset": o}}), at o."""
    reported: dict[str, int] = {}
    if isinstance(response, dict):
        for failure in response.get("batchItemFailures") or []:
            item = failure["itemIdentifier"]
            reported[item["partition"]] = int(item["offset"])
    return {tp: reported.get(f"{tp.topic}-{tp.partition}", records[-1].offset + 1) for tp, records in batch.items()}


async def run_kafka_source(
    settings: Settings,
    topic: str,
    group_id: str,
    handler: Handler,
    stop: asyncio.Event,
    on_ready: Callable[[], None] = lambda: None,
) -> None:
    """Feed `topic` to `handler` until `stop` is set (the handler runs in a thread: it has its own loop)."""
    consumer = create_consumer(settings, topic, group_id=group_id)
    await consumer.start()
    try:
        on_ready()
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=100)
            if not batch:
                continue
            try:
                response = await asyncio.to_thread(
                    handler, lambda_kafka_event(batch, settings.kafka_bootstrap_servers), None
                )
            except Exception:
                log.exception("handler raised; the batch will be retried")
                for tp, records in batch.items():
                    consumer.seek(tp, records[0].offset)
                await asyncio.sleep(RETRY_PAUSE_S)  # Lambda's retry back-off, not a synchronisation
                continue
            resume = resume_offsets(batch, response)
            try:
                await consumer.commit(resume)
            except (CommitFailedError, IllegalStateError):
                # The group rebalanced under us (a member's heartbeats starved on a loaded machine): whichever
                # member holds the partitions now gets the batch again, and the handlers are idempotent (their
                # writes are conditional), as an MSK event source's retry is.
                log.warning("commit of a handled batch lost to a rebalance; it will be redelivered: %s", resume)
                continue
            retried = {tp: offset for tp, offset in resume.items() if offset <= batch[tp][-1].offset}
            if retried:
                log.warning("partial batch failure; partitions resume from %s", retried)
                for tp, offset in retried.items():
                    consumer.seek(tp, offset)
                await asyncio.sleep(RETRY_PAUSE_S)  # Lambda's retry back-off, not a synchronisation
    finally:
        # Every handled batch is already committed, so a stop that hangs on a broker that stopped answering
        # (a pending fetch) loses nothing: it is bounded and logged, not allowed to hang the shutdown.
        try:
            await asyncio.wait_for(consumer.stop(), STOP_TIMEOUT_S)
        except (KafkaError, TimeoutError):
            log.warning("the consumer did not stop cleanly; nothing uncommitted was lost", exc_info=True)
        except asyncio.CancelledError:
            # aiokafka's fetcher cancels its own pending fetch on close and lets that cancellation escape
            # (seen with Tansu after a fetch timed out). Only a cancellation aimed at this task goes on.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            log.warning("the consumer's fetcher leaked a cancellation while stopping; nothing was lost")


def main() -> None:
    """`python -m infra.local.kafka_source --handler functions.portraits.handler.handler --topic T --group G`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--handler", required=True, help="dotted path of the Lambda handler")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    args = parser.parse_args()
    settings = get_settings()
    configure_process(settings, service_for_handler(args.handler))

    async def serve(handler: Handler) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_kafka_source(
            settings,
            args.topic,
            args.group,
            handler,
            stop,
            on_ready=lambda: log.info("%s: %s -> %s", READY_LINE, args.topic, args.handler),
        )

    # The handler is closed once this loop has ended: closing runs the handler's own loop, which cannot run
    # inside another.
    with process_handler(args.handler) as handler:
        asyncio.run(serve(handler))


if __name__ == "__main__":
    main()
