"""The embedded stack's EventBridge: invokes a Lambda handler with a scheduled-rule event every few seconds.

On AWS an EventBridge rule (`rate(1 minute)`) invokes the function; here the same event shape arrives more
often, so a due webhook retry or a stale job waits seconds rather than a minute.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import uuid
from typing import Any

from events.envelope import utcnow
from infra.local.sqs_poller import Handler, process_handler
from infra.observability import configure_process, service_for_handler
from infra.settings import get_settings

log = logging.getLogger(__name__)

READY_LINE = "scheduler ready"


def scheduled_event(rule: str) -> dict[str, Any]:
    """EventBridge's event for a scheduled rule."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": [f"arn:aws:events:us-east-1:000000000000:rule/{rule}"],
        "detail": {},
    }


def run_schedule(handler: Handler, every_s: float, rule: str, stop: threading.Event) -> None:
    """Invoke `handler` every `every_s` seconds until `stop`; a failed invocation is logged, the next one runs."""
    while not stop.is_set():
        try:
            result = handler(scheduled_event(rule), None)
            log.debug("%s: %s", rule, result)
        except Exception:
            log.exception("scheduled invocation of %s failed", rule)
        stop.wait(every_s)  # the schedule's period, not a synchronisation


def main() -> None:
    """`python -m infra.local.scheduler --handler functions.webhooks.handler.handler --every 5`."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--handler", required=True, help="dotted path of the Lambda handler")
    parser.add_argument("--every", type=float, required=True, help="seconds between invocations")
    parser.add_argument("--rule", default="schedule")
    args = parser.parse_args()
    configure_process(get_settings(), service_for_handler(args.handler))
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with process_handler(args.handler) as handler:
        log.info("%s: %s every %ss", READY_LINE, args.handler, args.every)
        run_schedule(handler, args.every, args.rule, stop)


if __name__ == "__main__":
    main()
