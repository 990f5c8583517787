"""Stopping a consumer survives aiokafka re-raising a fetch's cancellation, and still closes its client."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaConsumer

from infra.kafka import stop_consumer


class Client:
    def __init__(self) -> None:
        self.closed = False

    async def close(self) -> None:
        self.closed = True


class Consumer:
    """Raises what aiokafka 0.14's fetcher raises when a timed-out fetch is backing off as it closes."""

    def __init__(self, stop_hangs: bool = False) -> None:
        self._client = Client()
        self.stop_hangs = stop_hangs
        self.stopping = asyncio.Event()

    async def stop(self) -> None:
        self.stopping.set()
        if self.stop_hangs:
            await asyncio.Event().wait()
        raise asyncio.CancelledError


def as_consumer(fake: Consumer) -> AIOKafkaConsumer:
    return cast(AIOKafkaConsumer, cast(Any, fake))


async def test_a_cancellation_from_the_fetcher_is_not_the_callers() -> None:
    fake = Consumer()
    await stop_consumer(as_consumer(fake))
    assert fake._client.closed


async def test_a_cancelled_caller_is_still_cancelled() -> None:
    fake = Consumer(stop_hangs=True)
    task = asyncio.create_task(stop_consumer(as_consumer(fake)))
    await fake.stopping.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not fake._client.closed
