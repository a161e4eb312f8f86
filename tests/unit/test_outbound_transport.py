"""The sender's HTTP transport against a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from consumers.outbound.base import SendError
from consumers.outbound.http_errors import origin_of, post_json
from consumers.outbound.transport import KEEPALIVE_EXPIRY_S, ShardedTransport
from switchboard.logs import configure_logging
from switchboard.proxy import ProxySettingError

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"


async def test_a_connection_idle_as_long_as_servers_keep_it_is_not_reused() -> None:
    # Servers (uvicorn, Node) close a connection after 5 s idle, as httpx dropped its own:
    # a send on one being closed just then failed with ReadError, reported "may have been
    # sent" and not retried. Past KEEPALIVE_EXPIRY_S idle, a new connection is opened.
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while await reader.readuntil(b"\r\n\r\n"):
            writer.write(ANSWER)
            await writer.drain()

    async def serve_quietly(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await serve(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(serve_quietly, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, httpx.AsyncClient(transport=ShardedTransport(shards=1)) as client:
        for _ in range(2):
            assert (await client.get(f"http://127.0.0.1:{port}/")).text == "ok"
        assert connections == 1  # reused while fresh
        await asyncio.sleep(KEEPALIVE_EXPIRY_S + 0.5)
        assert (await client.get(f"http://127.0.0.1:{port}/")).text == "ok"
    assert connections == 2
    assert KEEPALIVE_EXPIRY_S < 5


# --- proxies from the environment ------------------------------------------------------------

PROXY_PASSWORD = "proxy-pass-w0rd"  # the no_proxies fixture is in tests/conftest.py


class Proxy:
    """A forward proxy on 127.0.0.1 that answers requests itself and refuses tunnels
    (CONNECT), recording the head of each request."""

    def __init__(self) -> None:
        self.heads: list[str] = []
        self.port = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        self.heads.append(head)
        if head.startswith("CONNECT "):
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
        else:
            length = next((int(line.split(":", 1)[1]) for line in head.split("\r\n")
                           if line.lower().startswith("content-length:")), 0)
            await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 14\r\nConnection: close\r\n\r\n"
                         b"from-the-proxy")
        await writer.drain()
        writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Proxy]:
        server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        async with server:
            yield self


async def direct_server() -> tuple[asyncio.Server, list[bytes]]:
    """A server answering "direct" to each request; its heads, as received."""
    heads: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append(await reader.readuntil(b"\r\n\r\n"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\ndirect")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0), heads


@pytest.mark.parametrize("variable", ["HTTP_PROXY", "http_proxy", "ALL_PROXY"])
async def test_requests_go_through_the_proxy_the_environment_names(
        variable: str, no_proxies: pytest.MonkeyPatch) -> None:
    # httpx reads the proxy variables only for a client without a transport of its own:
    # behind an egress proxy every send failed to connect (a name the host cannot resolve).
    async with Proxy().running() as proxy:
        no_proxies.setenv(variable, f"http://sender:{PROXY_PASSWORD}@127.0.0.1:{proxy.port}")
        async with httpx.AsyncClient(transport=ShardedTransport(shards=2)) as client:
            response = await client.post("http://provider.invalid/send", json={"to": "+1"})
    assert response.text == "from-the-proxy"
    assert proxy.heads[0].startswith("POST http://provider.invalid/send HTTP/1.1\r\n")
    credentials = base64.b64encode(f"sender:{PROXY_PASSWORD}".encode()).decode()
    assert f"Proxy-Authorization: Basic {credentials}" in proxy.heads[0]


async def test_hosts_no_proxy_names_are_reached_directly(no_proxies: pytest.MonkeyPatch) -> None:
    server, direct = await direct_server()
    port = server.sockets[0].getsockname()[1]
    async with server, Proxy().running() as proxy:
        no_proxies.setenv("HTTP_PROXY", f"127.0.0.1:{proxy.port}")  # no scheme: http://
        no_proxies.setenv("NO_PROXY", "localhost, 127.0.0.1")
        async with httpx.AsyncClient(transport=ShardedTransport(shards=2)) as client:
            assert (await client.get(f"http://127.0.0.1:{port}/")).text == "direct"
            assert (await client.get("http://provider.invalid/")).text == "from-the-proxy"
    assert len(direct) == 1
    assert [head.split("\r\n", 1)[0] for head in proxy.heads] == [
        "GET http://provider.invalid/ HTTP/1.1"]


async def test_https_goes_through_a_tunnel_whose_refusal_sent_nothing(
        no_proxies: pytest.MonkeyPatch) -> None:
    # The proxy refused to open the tunnel: the provider was never reached, so the send may be
    # tried again (not "may have been sent").
    async with Proxy().running() as proxy:
        no_proxies.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
        async with httpx.AsyncClient(transport=ShardedTransport(shards=1)) as client:
            with pytest.raises(SendError) as caught:
                await post_json(client, "https://provider.invalid/send", {"to": "+1"},
                                headers={}, timeout_s=5)
    assert proxy.heads[0].startswith("CONNECT provider.invalid:443 HTTP/1.1\r\n")
    error = caught.value
    assert (error.code, error.retryable, error.maybe_sent) == ("network", True, False)
    assert error.description == ("network error: ProxyError: 403 Forbidden "
                                 "(sending to https://provider.invalid:443 through the proxy "
                                 f"127.0.0.1:{proxy.port})")


async def test_the_proxy_in_use_is_logged_without_its_password(
        no_proxies: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    no_proxies.setenv("HTTPS_PROXY", f"http://sender:{PROXY_PASSWORD}@proxy.internal:3128")
    no_proxies.setenv("NO_PROXY", ".internal")
    await ShardedTransport(shards=1).aclose()
    logging.getLogger("httpx").warning("via http://sender:%s@proxy.internal", PROXY_PASSWORD)
    err = capsys.readouterr().err
    assert "proxy.internal:3128" in err and ".internal" in err
    assert PROXY_PASSWORD not in err


@pytest.mark.parametrize("proxy", [f"ftp://sender:{PROXY_PASSWORD}@proxy.internal:21",
                                   f"socks5://sender:{PROXY_PASSWORD}@proxy.internal:1080"])
async def test_a_proxy_httpx_cannot_use_stops_the_start(
        proxy: str, no_proxies: pytest.MonkeyPatch) -> None:
    # Not only at the first send: socksio is not installed, and ftp:// is no proxy httpx knows.
    no_proxies.setenv("ALL_PROXY", proxy)
    with pytest.raises(ProxySettingError, match="ALL_PROXY") as refused:
        ShardedTransport(shards=1)
    assert PROXY_PASSWORD not in str(refused.value)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then let go)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_connection_refused_says_where_without_the_urls_secrets() -> None:
    # A wrong base_url gave "network error: ConnectError: All connection attempts failed",
    # naming no host: the operator could not tell which account's base_url was wrong, nor how.
    # Only scheme://host:port is named: a URL's password, path and query may hold a secret.
    port = closed_port()
    url = f"http://user:a-password@127.0.0.1:{port}/applications/a-path-key/send?key=a-query-key"
    async with httpx.AsyncClient(transport=ShardedTransport(shards=1)) as client:
        with pytest.raises(SendError) as caught:
            await post_json(client, url, {"to": "+1"}, headers={}, timeout_s=10)
    error = caught.value
    assert (error.code, error.retryable, error.maybe_sent) == ("network", True, False)
    assert error.description.startswith("network error: ConnectError: ")
    assert error.description.endswith(f" (sending to http://127.0.0.1:{port})")
    for secret in ("user", "a-password", "a-path-key", "a-query-key", "/applications"):
        assert secret not in error.description


@pytest.mark.parametrize(("url", "origin"), [
    ("https://api.example.com/v1/send?token=t", "https://api.example.com:443"),
    ("http://api.example.com/send", "http://api.example.com:80"),
    ("https://u:p@api.example.com:8443/x", "https://api.example.com:8443"),
    ("http://[::1]:9000/send", "http://[::1]:9000"),
])
def test_the_origin_named_is_scheme_host_and_port(url: str, origin: str) -> None:
    assert origin_of(url) == origin


async def test_a_send_never_connected_in_its_time_says_where() -> None:
    async def never_connects(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(60)  # no trace of the request leaving: still connecting
        raise AssertionError("not reached")
    async with httpx.AsyncClient(transport=httpx.MockTransport(never_connects)) as client:
        with pytest.raises(SendError) as caught:
            await post_json(client, "https://api.example.com/x?key=k", {}, headers={},
                            timeout_s=0.2)
    assert caught.value.description == (
        "timed out after 0.2s (not connected to https://api.example.com:443)")
