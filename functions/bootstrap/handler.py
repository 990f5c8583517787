"""Lambda handler of the bootstrap function: creates the Kafka topics as `infra/bootstrap.py` does (the bucket,
tables and queues are CloudFormation's own resources, so only the topics are left to make).

Invoked two ways:
- as the `Custom::KafkaTopics` resource's service token: on Create and Update it creates what is missing, on
  Delete it deletes nothing (the topics' records outlive the stack, as the bucket and tables do), and either
  way it PUTs the answer to the event's ResponseURL. Any error becomes a FAILED answer with the reason, and
  topic creation is bounded by the invocation's remaining time, so CloudFormation is never left waiting for
  the hour it would wait on a silent function;
- directly, with any other event (`{}`): a manual run that returns the topics.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import httpx

from infra.bootstrap import ensure_topics
from infra.resources import resources_for
from infra.settings import Settings, get_settings

log = logging.getLogger(__name__)

# Kept for the answer's PUT and for Lambda itself when the invocation's time runs short.
RESPONSE_MARGIN_S = 15.0
# Used when there is no Lambda context (a local call): what infra.bootstrap waits for a starting broker.
DEFAULT_TIMEOUT_S = 30.0
RESPONSE_TIMEOUT_S = 10.0
# CloudFormation refuses a response body over 4 KiB; the reason is the part that can be long.
MAX_REASON_CHARS = 1000


async def create_topics(settings: Settings, timeout_s: float) -> list[str]:
    """Create every topic of `infra.resources` that is missing, within `timeout_s`; their names."""
    resources = resources_for(settings)
    await asyncio.wait_for(ensure_topics(settings, resources, timeout_s=timeout_s), timeout_s)
    return [topic.name for topic in resources.topics]


def is_custom_resource_event(event: dict[str, Any]) -> bool:
    """Whether `event` is CloudFormation's request to a custom resource."""
    return "RequestType" in event and "ResponseURL" in event


def response_body(event: dict[str, Any], status: str, reason: str, physical_id: str, data: dict[str, Any]) -> bytes:
    """The custom resource's answer, as CloudFormation reads it from the ResponseURL."""
    return json.dumps(
        {
            "Status": status,
            "Reason": reason[:MAX_REASON_CHARS],
            "PhysicalResourceId": physical_id,
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "Data": data,
        }
    ).encode()


def send_response(url: str, body: bytes) -> None:
    """PUT the answer. The URL is a presigned S3 URL signed without a content type, so none may be sent."""
    response = httpx.put(url, content=body, headers={"Content-Type": ""}, timeout=RESPONSE_TIMEOUT_S)
    response.raise_for_status()


def time_left_s(context: Any) -> float:
    """Seconds the topic creation may take: the invocation's remaining time less the margin."""
    if context is None or not hasattr(context, "get_remaining_time_in_millis"):
        return DEFAULT_TIMEOUT_S
    return max(1.0, context.get_remaining_time_in_millis() / 1000 - RESPONSE_MARGIN_S)


class BootstrapLambda:
    """The bootstrap function."""

    def __init__(self, settings_factory: Callable[[], Settings] = get_settings) -> None:
        self.settings_factory = settings_factory

    def __call__(self, event: dict[str, Any], context: Any = None) -> dict[str, Any]:
        if not is_custom_resource_event(event):
            return {"topics": asyncio.run(create_topics(self.settings_factory(), time_left_s(context)))}
        return self.answer_custom_resource(event, context)

    def answer_custom_resource(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """Act on CloudFormation's request and PUT the answer, SUCCESS or FAILED, whatever happened."""
        request_type = event["RequestType"]
        # Kept across updates: a new id would make CloudFormation delete the "old" resource afterwards.
        physical_id = event.get("PhysicalResourceId") or f"{event['LogicalResourceId']}-kafka-topics"
        status, data = "SUCCESS", {}
        try:
            if request_type in ("Create", "Update"):
                topics = asyncio.run(create_topics(self.settings_factory(), time_left_s(context)))
                data = {"Topics": ",".join(topics)}
                reason = f"{len(topics)} topics present"
            else:
                reason = "topics kept: their records outlive the stack"
        except Exception as exc:
            log.exception("%s of %s failed", request_type, event.get("LogicalResourceId"))
            status = "FAILED"
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            log_stream = getattr(context, "log_stream_name", None)
            if log_stream:
                reason = f"{reason} (log stream {log_stream})"
        # If this PUT fails the invocation fails too, and Lambda's retries of the asynchronous invocation run
        # the (idempotent) request again and answer again.
        send_response(event["ResponseURL"], response_body(event, status, reason, physical_id, data))
        log.info("%s answered %s: %s", request_type, status, reason)
        return {"Status": status, "Reason": reason, "PhysicalResourceId": physical_id}


handler = BootstrapLambda()
