"""Plays the SQS -> Lambda event source mapping locally: receive a batch, call the handler with the same
event shape Lambda sends, delete what succeeded, leave the reported failures to be redelivered.

The handler is named by a string (`module.attribute`), as a Lambda function's handler is, so this module
imports nothing from `functions/`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import botocore.session

from infra.aws import client_kwargs
from infra.observability import configure_process, service_for_handler
from infra.settings import Settings, get_settings

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any], Any], dict[str, Any] | None]


def load_handler(path: str) -> Handler:
    """Import `package.module.attribute` and return the attribute."""
    module_name, _, attribute = path.rpartition(".")
    return getattr(importlib.import_module(module_name), attribute)


@contextlib.contextmanager
def process_handler(path: str) -> Iterator[Handler]:
    """The handler named by `path` for this process's life, closed when the block ends.

    A handler opens its clients once per process (an `AsyncLambda`'s context: a Kafka producer, aiohttp
    sessions, an event loop). Left open at exit, the interpreter reports `Unclosed AIOKafkaProducer`,
    `Unclosed client session` and `Task was destroyed but it is pending!`; closed here, they are flushed and
    shut down in order. Call it where no event loop runs (closing runs the handler's own loop).
    """
    handler = load_handler(path)
    try:
        yield handler
    finally:
        close = getattr(handler, "close", None)
        if callable(close):
            try:
                close()
            except Exception:
                # The process is stopping either way: say what could not be closed, do not fail the stop.
                log.exception("closing %s failed", path)


def lambda_sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str) -> dict[str, Any]:
    """The event Lambda builds from a batch of SQS messages."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m.get("MD5OfBody") or hashlib.md5(m["Body"].encode()).hexdigest(),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


class SqsPoller:
    """Long-polls one queue and feeds batches to a Lambda-style handler."""

    def __init__(self, settings: Settings, queue_name: str, handler: Handler) -> None:
        self.settings = settings
        self.handler = handler
        self.sqs = botocore.session.get_session().create_client("sqs", **client_kwargs(settings, "sqs"))
        self.queue_url = self.sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
        self.queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]

    def poll_once(self) -> int:
        """Receive and handle one batch; returns how many messages were received."""
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.settings.poller_batch_size,
            WaitTimeSeconds=self.settings.poller_wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return 0
        event = lambda_sqs_event(messages, self.queue_arn, self.settings.aws_region)
        try:
            result = self.handler(event, None) or {}
        except Exception:
            # A handler that raises fails the whole batch: every message becomes visible again later.
            log.exception("handler raised; %d messages will be redelivered", len(messages))
            return len(messages)
        failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        return len(messages)

    def run(self, stop: threading.Event) -> None:
        """Poll until `stop` is set."""
        while not stop.is_set():
            try:
                self.poll_once()
            except Exception:
                log.exception("polling failed")
                stop.wait(1.0)


READY_LINE = "sqs poller ready"


def main() -> None:
    """`python -m infra.local.sqs_poller --handler functions.s3_events.handler.handler`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--handler", required=True, help="dotted path of the Lambda handler")
    parser.add_argument("--queue", help="queue name (default: the S3 notifications queue)")
    args = parser.parse_args()
    settings = get_settings()
    configure_process(settings, service_for_handler(args.handler))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with process_handler(args.handler) as handler:
        poller = SqsPoller(settings, args.queue or settings.notifications_queue, handler)
        log.info("%s: %s -> %s", READY_LINE, poller.queue_url, args.handler)
        poller.run(stop)


if __name__ == "__main__":
    main()
