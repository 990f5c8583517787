"""Outbound HTTP to addresses users give us (image URLs now, webhooks later), safe against SSRF.

The address check runs where the connection is made: the host is resolved once, every address it resolves
to is checked, and the socket connects to a checked address. So a redirect (each hop connects anew) or a
name whose DNS answer changes between a check and the connect (rebinding) cannot reach private, loopback,
link-local (cloud metadata) or other non-global addresses. The operator can allow networks in settings.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class EgressRefused(Exception):
    """A URL the service will not fetch, and why (safe to show to the user who gave it)."""


def is_forbidden(address: IPAddress, allowed: Iterable[IPNetwork] = ()) -> bool:
    """True unless the address is globally routable (or in an operator-allowed network)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if any(address in network for network in allowed):
        return False
    return not address.is_global or address.is_multicast


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's default backend, connecting only to addresses that pass `is_forbidden`."""

    def __init__(self, allowed: tuple[IPNetwork, ...]) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.allowed = allowed

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise EgressRefused(f"host {host!r} does not resolve") from exc
        addresses = list(dict.fromkeys(ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos))
        refused = [a for a in addresses if is_forbidden(a, self.allowed)]
        if refused or not addresses:
            # One bad answer refuses the host: a name that also points inward is not trusted at all.
            raise EgressRefused(f"host {host!r} resolves to a non-public address ({refused[0] if refused else '?'})")
        return await self.inner.connect_tcp(
            str(addresses[0]), port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )

    async def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("unix sockets are not reachable")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class _GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(self, allowed: tuple[IPNetwork, ...]) -> None:
        super().__init__(trust_env=False)
        # httpx builds its pool without a way to pass a network backend; replace it with one that has ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(), network_backend=_GuardedBackend(allowed)
        )


def guarded_client(
    allowed_networks: Iterable[str] = (), timeout_s: float = 10.0, max_redirects: int = 3
) -> httpx.AsyncClient:
    """An HTTP client that refuses non-public addresses at connect time, on every hop."""
    allowed = tuple(ipaddress.ip_network(n, strict=False) for n in allowed_networks)
    return httpx.AsyncClient(
        transport=_GuardedTransport(allowed),
        timeout=httpx.Timeout(timeout_s),
        follow_redirects=True,
        max_redirects=max_redirects,
        trust_env=False,  # a proxy from the environment would connect on our behalf, unchecked
    )


@dataclass(frozen=True)
class Fetched:
    """A fetched body and where it finally came from."""

    url: str
    body: bytes


async def fetch_limited(client: httpx.AsyncClient, url: str, max_bytes: int, deadline_s: float) -> Fetched:
    """GET `url` with `client`, reading at most `max_bytes` and taking at most `deadline_s` in all."""
    parsed = httpx.URL(url)
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise EgressRefused(f"{url!r} is not an http(s) URL")
    try:
        async with asyncio.timeout(deadline_s):
            async with client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise EgressRefused(f"{url} answered HTTP {response.status_code}")
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise EgressRefused(f"{url} is {declared} bytes; the limit is {max_bytes}")
                chunks, size = [], 0
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > max_bytes:
                        raise EgressRefused(f"{url} is over the limit of {max_bytes} bytes")
                    chunks.append(chunk)
                return Fetched(str(response.url), b"".join(chunks))
    except TimeoutError as exc:
        raise EgressRefused(f"{url} took longer than {deadline_s:g} s") from exc
    except httpx.TooManyRedirects as exc:
        raise EgressRefused(f"{url} redirects too many times") from exc
    except httpx.HTTPError as exc:
        raise EgressRefused(f"{url} could not be fetched: {type(exc).__name__}") from exc
