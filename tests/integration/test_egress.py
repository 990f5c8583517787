"""Fetching user-given URLs: non-public addresses refused at connect time, on every hop; limits enforced.

Only loopback is ever contacted: refused addresses are refused before any packet leaves.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest

from infra.egress import EgressRefused, fetch_limited, guarded_client, is_forbidden
from tests.http_server import LoopbackServer, loopback_server

pytestmark = pytest.mark.integration


@pytest.fixture
def server() -> Iterator[LoopbackServer]:
    with loopback_server() as server:
        server.routes["/photo.png"] = (200, {"Content-Type": "image/png"}, b"\x89PNG" + b"0" * 100)
        server.routes["/big"] = (200, {}, b"0" * 5000)
        yield server


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "::1",
        "169.254.169.254",
        "10.0.0.1",
        "192.168.1.1",
        "172.16.0.1",
        "100.64.0.1",
        "0.0.0.0",
        "::ffff:127.0.0.1",
        "fd00::1",
        "fe80::1",
        "224.0.0.1",
    ],
)
def test_non_public_addresses_are_forbidden(address: str) -> None:
    assert is_forbidden(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:4700::1111", "8.8.8.8"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert not is_forbidden(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/photo.png",
        "http://[::1]:{port}/photo.png",
        "http://0x7f000001:{port}/photo.png",
        "http://2130706433:{port}/photo.png",
        "http://localhost:{port}/photo.png",
    ],
)
async def test_loopback_in_any_spelling_is_refused_and_never_reached(server: LoopbackServer, url: str) -> None:
    port = server.httpd.server_address[1]
    async with guarded_client() as client:
        with pytest.raises(EgressRefused, match=r"non-public|does not resolve"):
            await fetch_limited(client, url.format(port=port), max_bytes=10_000, deadline_s=5)
    assert server.requests == []


async def test_metadata_and_private_addresses_are_refused_before_connecting() -> None:
    async with guarded_client() as client:
        for url in ("http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/x.png"):
            with pytest.raises(EgressRefused, match="non-public"):
                await fetch_limited(client, url, max_bytes=10_000, deadline_s=5)


async def test_a_redirect_into_loopback_is_refused(server: LoopbackServer) -> None:
    # The first hop is allowed (as an operator would allow a partner network); its redirect points at
    # ::1, which is not: the second connect is refused.
    server.routes["/hop"] = (302, {"Location": f"http://[::1]:{server.httpd.server_address[1]}/photo.png"}, b"")
    async with guarded_client(allowed_networks=["127.0.0.1/32"]) as client:
        with pytest.raises(EgressRefused, match="non-public"):
            await fetch_limited(client, f"{server.base_url}/hop", max_bytes=10_000, deadline_s=5)
    assert server.requests == ["/hop"]


async def test_allowed_network_fetches_and_limits_apply(server: LoopbackServer) -> None:
    async with guarded_client(allowed_networks=["127.0.0.0/8"]) as client:
        fetched = await fetch_limited(client, f"{server.base_url}/photo.png", max_bytes=10_000, deadline_s=5)
        assert fetched.body.startswith(b"\x89PNG")
        with pytest.raises(EgressRefused, match="limit"):
            await fetch_limited(client, f"{server.base_url}/big", max_bytes=1000, deadline_s=5)
        with pytest.raises(EgressRefused, match="HTTP 404"):
            await fetch_limited(client, f"{server.base_url}/missing", max_bytes=1000, deadline_s=5)
        with pytest.raises(EgressRefused, match="not an http"):
            await fetch_limited(client, "file:///etc/passwd", max_bytes=1000, deadline_s=5)
