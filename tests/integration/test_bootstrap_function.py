"""The bootstrap function as CloudFormation's `Custom::KafkaTopics`: against a broker of its own (so the topics
are really created here) and a loopback receiver standing in for the presigned ResponseURL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from events.topics import ALL_TOPICS
from functions.bootstrap.handler import BootstrapLambda
from infra.kafka import admin_kwargs
from infra.local.processes import free_port
from tests.conftest import Broker
from tests.http_server import LoopbackServer, loopback_server

pytestmark = pytest.mark.integration

RESPONSE_PATH = "/cfn-response?X-Amz-Signature=abc"


@pytest.fixture(scope="module")
def fresh_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker of this module's own, with no topic yet."""
    broker = Broker(tmp_path_factory.mktemp("bootstrap-fn"))
    broker.start()
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
def receiver() -> Iterator[LoopbackServer]:
    """Records the PUT of the custom resource's answer (S3's presigned URL answers 200 with no body)."""
    with loopback_server() as server:
        handler_class = server.httpd.RequestHandlerClass
        handler_class.do_PUT = handler_class.do_POST  # type: ignore[attr-defined]  # recorded in `posts`
        server.routes[RESPONSE_PATH] = (200, {}, b"")
        yield server


class LambdaContext:
    """The part of Lambda's context the handler reads."""

    log_stream_name = "2026/12/01/[$LATEST]abc"

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def custom_resource_event(receiver: LoopbackServer, request_type: str, **extra: Any) -> dict[str, Any]:
    """CloudFormation's request to a `Custom::KafkaTopics` resource."""
    return {
        "RequestType": request_type,
        "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:lorafoundry-bootstrap",
        "ResponseURL": f"{receiver.base_url}{RESPONSE_PATH}",
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/lorafoundry/guid",
        "RequestId": f"request-{request_type}",
        "ResourceType": "Custom::KafkaTopics",
        "LogicalResourceId": "KafkaTopics",
        "ResourceProperties": {"Topics": list(ALL_TOPICS)},
        **extra,
    }


def answer(receiver: LoopbackServer) -> dict[str, Any]:
    """The one answer the receiver got, checked to be a PUT without a content type, as S3's signature wants."""
    assert len(receiver.posts) == 1, receiver.posts
    received = receiver.posts[0]
    assert received.path == RESPONSE_PATH
    assert received.headers.get("content-type", "") == ""
    return json.loads(received.body)


async def topics_on(settings) -> set[str]:
    admin = AIOKafkaAdminClient(**admin_kwargs(settings))
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def test_create_makes_the_topics_and_answers_success(bootstrapped, fresh_broker, receiver) -> None:
    settings = bootstrapped.model_copy(update={"kafka_bootstrap_servers": fresh_broker})
    assert not set(ALL_TOPICS) & await topics_on(settings)

    handler = BootstrapLambda(lambda: settings)
    result = await asyncio.to_thread(handler, custom_resource_event(receiver, "Create"), LambdaContext(300_000))

    assert set(ALL_TOPICS) <= await topics_on(settings)
    body = answer(receiver)
    assert body["Status"] == "SUCCESS", body
    assert body["PhysicalResourceId"] == result["PhysicalResourceId"] == "KafkaTopics-kafka-topics"
    assert (body["StackId"], body["RequestId"], body["LogicalResourceId"]) == (
        "arn:aws:cloudformation:us-east-1:123456789012:stack/lorafoundry/guid",
        "request-Create",
        "KafkaTopics",
    )
    assert body["Data"]["Topics"].split(",") == list(ALL_TOPICS)


async def test_update_keeps_its_physical_id_and_delete_keeps_the_topics(bootstrapped, fresh_broker, receiver) -> None:
    settings = bootstrapped.model_copy(update={"kafka_bootstrap_servers": fresh_broker})
    handler = BootstrapLambda(lambda: settings)

    event = custom_resource_event(receiver, "Update", PhysicalResourceId="topics-1")
    await asyncio.to_thread(handler, event, LambdaContext(300_000))
    assert (answer(receiver)["Status"], answer(receiver)["PhysicalResourceId"]) == ("SUCCESS", "topics-1")

    receiver.posts.clear()
    event = custom_resource_event(receiver, "Delete", PhysicalResourceId="topics-1")
    await asyncio.to_thread(handler, event, LambdaContext(300_000))
    assert answer(receiver)["Status"] == "SUCCESS"
    assert set(ALL_TOPICS) <= await topics_on(settings)


async def test_a_broker_that_never_answers_becomes_a_failed_answer_in_time(bootstrapped, receiver) -> None:
    settings = bootstrapped.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{free_port()}"})
    handler = BootstrapLambda(lambda: settings)
    # 17 s left, 15 s of it kept for the answer: topic creation gets 2 s, then the FAILED answer goes out.
    result = await asyncio.to_thread(handler, custom_resource_event(receiver, "Create"), LambdaContext(17_000))

    body = answer(receiver)
    assert body["Status"] == result["Status"] == "FAILED"
    assert body["Reason"] and "log stream 2026/12/01/[$LATEST]abc" in body["Reason"]
    assert body["PhysicalResourceId"] == "KafkaTopics-kafka-topics"


async def test_a_direct_call_creates_the_topics_and_returns_them(bootstrapped, fresh_broker) -> None:
    settings = bootstrapped.model_copy(update={"kafka_bootstrap_servers": fresh_broker})
    assert await asyncio.to_thread(BootstrapLambda(lambda: settings), {}, None) == {"topics": list(ALL_TOPICS)}
