"""aiobotocore clients built from Settings, and a container that keeps them open for a process's life."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session

from infra.settings import Settings

_CONFIG = AioConfig(
    retries={"max_attempts": 4, "mode": "standard"},
    connect_timeout=5,
    read_timeout=30,
    max_pool_connections=32,
)


def client_kwargs(settings: Settings, service: str) -> dict[str, Any]:
    """Keyword arguments for `create_client` of one service (also used by the sync botocore poller)."""
    kwargs: dict[str, Any] = {"region_name": settings.aws_region}
    endpoint = settings.endpoint_for(service)
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    if settings.aws_access_key_id and settings.aws_secret_access_key:
        kwargs["aws_access_key_id"] = settings.aws_access_key_id
        kwargs["aws_secret_access_key"] = settings.aws_secret_access_key.get_secret_value()
    return kwargs


def create_client(settings: Settings, service: str, session: AioSession | None = None) -> Any:
    """A client of one service with the shared retries and timeouts, to open with `async with`. Also for a service
    only one function uses (CloudWatch, by the lag-metrics function), outside the long-lived `AwsClients`."""
    return (session or get_session()).create_client(service, config=_CONFIG, **client_kwargs(settings, service))


class AwsClients:
    """Long-lived S3, DynamoDB and SQS clients; open with `async with` or `open()`/`close()`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stack = AsyncExitStack()
        self.s3: Any = None
        self.dynamodb: Any = None
        self.sqs: Any = None

    async def open(self) -> AwsClients:
        """Create the clients (connections are pooled and reused)."""
        session = get_session()  # one session: its loader reads botocore's data files once for the three
        for service in ("s3", "dynamodb", "sqs"):
            client = await self._stack.enter_async_context(create_client(self.settings, service, session))
            setattr(self, service, client)
        return self

    async def close(self) -> None:
        """Close every client."""
        await self._stack.aclose()

    async def __aenter__(self) -> AwsClients:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
