"""Loopback is never sent to a proxy: httpx sends 127.0.0.1 through HTTP_PROXY unless NO_PROXY
names it, and a proxy reaching "127.0.0.1" reaches its own machine. Against a real forward
proxy stand-in and a real server, both on 127.0.0.1."""

from __future__ import annotations

import httpx
import pytest

from consumers.outbound.transport import ShardedTransport
from simulator.posting import ClientPool
from switchboard.proxy import is_loopback
from tests.unit.test_outbound_transport import Proxy, direct_server


@pytest.mark.parametrize(("host", "loopback"), [
    ("localhost", True), ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True),
    ("::ffff:127.0.0.1", True),
    ("10.0.0.1", False), ("::2", False), ("localhost.example.com", False),
    ("provider.invalid", False), ("128.0.0.1", False),
])
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_the_sender_reaches_loopback_directly_and_providers_through_the_proxy(
        host: str, no_proxies: pytest.MonkeyPatch) -> None:
    # With HTTP_PROXY set and NO_PROXY not, `run`'s sender sent to the simulator beside it
    # through the proxy, which never reached it.
    server, direct = await direct_server()
    port = server.sockets[0].getsockname()[1]
    async with server, Proxy().running() as proxy:
        no_proxies.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        async with httpx.AsyncClient(transport=ShardedTransport(shards=1)) as client:
            assert (await client.get(f"http://{host}:{port}/")).text == "direct"
            assert (await client.get("http://provider.invalid/")).text == "from-the-proxy"
    assert len(direct) == 1
    assert [head.split("\r\n", 1)[0] for head in proxy.heads] == [
        "GET http://provider.invalid/ HTTP/1.1"]


async def test_the_simulator_posts_its_webhooks_directly(no_proxies: pytest.MonkeyPatch) -> None:
    # Its webhooks to ingest on 127.0.0.1 went to the proxy the environment named.
    server, direct = await direct_server()
    port = server.sockets[0].getsockname()[1]
    async with server, Proxy().running() as proxy:
        no_proxies.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
        pool = ClientPool(1, timeout_s=5)
        try:
            assert await pool.post(f"http://127.0.0.1:{port}/webhooks/infobip/demo", b"{}",
                                   {"content-type": "application/json"}) == 200
        finally:
            assert await pool.aclose() == []
    assert [head.split(b"\r\n", 1)[0] for head in direct] == [
        b"POST /webhooks/infobip/demo HTTP/1.1"]
    assert proxy.heads == []


async def test_a_proxy_variable_httpx_cannot_use_fails_no_simulator_webhook(
        no_proxies: pytest.MonkeyPatch) -> None:
    # Each webhook failed as its client was made (ValueError: unknown proxy scheme).
    server, direct = await direct_server()
    port = server.sockets[0].getsockname()[1]
    no_proxies.setenv("ALL_PROXY", "ftp://proxy.invalid:21")
    async with server:
        pool = ClientPool(1, timeout_s=5)
        try:
            assert await pool.post(f"http://127.0.0.1:{port}/hook", b"{}", {}) == 200
        finally:
            await pool.aclose()
    assert len(direct) == 1
