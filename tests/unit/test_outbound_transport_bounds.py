"""What the sender's transport keeps, and how it lets go of it: origins past MAX_ORIGINS once
their requests finish, connections closed even when a cancel comes mid-close. Real servers on
127.0.0.1, one per origin, counting the connections the client still holds open."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest

from consumers.outbound import transport as transport_module
from consumers.outbound.transport import ShardedTransport
from tests.polling import until

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"


class Host:
    """Answers "ok" on kept-alive connections once `gate` is open; counts the requests it
    read and the connections open (accepted, not yet closed by the client)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.requests = 0
        self.open = 0
        self.url = ""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                self.requests += 1
                await self.gate.wait()
                writer.write(ANSWER)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass  # the client closed it; or the loop ends with it open (a failed test)
        finally:
            self.open -= 1
            writer.close()


@contextlib.asynccontextmanager
async def hosts(count: int) -> AsyncIterator[list[Host]]:
    async with contextlib.AsyncExitStack() as stack:
        started = []
        for _ in range(count):
            host = Host()
            server = await asyncio.start_server(host.serve, "127.0.0.1", 0)
            await stack.enter_async_context(server)
            host.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/send"
            started.append(host)
        try:
            yield started
        finally:
            for host in started:
                host.gate.set()


async def held_open(client: httpx.AsyncClient, host: Host, requests: int) -> None:
    """`requests` answered by `host` on as many connections (all in flight at once), left
    open and idle."""
    host.gate.clear()
    sends = [asyncio.create_task(client.get(host.url)) for _ in range(requests)]
    assert await until(lambda: host.requests >= requests)
    host.gate.set()
    assert [answer.text for answer in await asyncio.gather(*sends)] == ["ok"] * requests
    assert host.open == requests


async def test_origins_past_the_bound_are_closed_once_their_requests_finish(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Origins met while every kept one was busy were added past MAX_ORIGINS (78-80 seen for
    # 64), and stayed, with their connections, until yet another origin came.
    monkeypatch.setattr(transport_module, "MAX_ORIGINS", 2)
    async with hosts(4) as servers, httpx.AsyncClient(transport=ShardedTransport()) as client:
        for host in servers:
            host.gate.clear()
        sends = [asyncio.create_task(client.get(host.url)) for host in servers]
        assert await until(lambda: sum(host.requests for host in servers) == 4)
        for host in servers:  # all 4 in flight at once: none could be closed
            host.gate.set()
        assert [answer.text for answer in await asyncio.gather(*sends)] == ["ok"] * 4
        assert await until(lambda: sum(host.open for host in servers) == 2), [
            host.open for host in servers]
        assert sorted(host.open for host in servers) == [0, 0, 1, 1]
        # each still reached: those let go of are connected to again
        for host in servers:
            assert (await client.get(host.url)).text == "ok"


async def test_a_request_cancelled_while_an_idle_origin_closes_leaves_none_of_its_sockets(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A new origin closed the least recently used idle one before its own request went out: a
    # cancel then (a send's timeout, the sender's stop) stopped the close after the first
    # connection, the others left to the garbage collector (ResourceWarning), if to anything.
    monkeypatch.setattr(transport_module, "MAX_ORIGINS", 1)
    transport = ShardedTransport()
    async with hosts(2) as (idle, new), httpx.AsyncClient(transport=transport) as client:
        await held_open(client, idle, 6)  # 3 shards of 2
        kept = list(transport._origins.values())  # noqa: F841 - no garbage collector to help
        cut = asyncio.create_task(client.get(new.url))
        await asyncio.sleep(0)  # the request starts: its origin is new, the idle one closes
        cut.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await cut
        assert await until(lambda: idle.open == 0), idle.open


async def test_a_stop_cancelled_while_closing_still_closes_every_connection() -> None:
    transport = ShardedTransport()
    async with hosts(2) as servers:
        client = httpx.AsyncClient(transport=transport)
        for host in servers:
            await held_open(client, host, 4)
        kept = list(transport._origins.values())  # noqa: F841 - no garbage collector to help
        stop = asyncio.create_task(client.aclose())
        await asyncio.sleep(0)  # the first connection is being closed
        stop.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await stop
        assert await until(lambda: sum(host.open for host in servers) == 0), [
            host.open for host in servers]


class StuckShard(httpx.AsyncHTTPTransport):
    """A shard whose close never ends (until cancelled): a close gone wrong."""

    async def aclose(self) -> None:
        await asyncio.Event().wait()


async def test_a_close_that_never_ends_does_not_hang_the_stop(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport_module, "CLOSE_TIMEOUT_S", 0.2)
    transport = ShardedTransport()
    async with hosts(1) as (host,):
        client = httpx.AsyncClient(transport=transport)
        await held_open(client, host, 2)
        (origin,) = transport._origins.values()
        origin.shards.insert(0, StuckShard())
        await asyncio.wait_for(client.aclose(), 10)
        # the shard closed after the stuck one still is
        assert await until(lambda: host.open == 0), host.open


def test_the_proxy_routes_kept_are_bounded(
        no_proxies: pytest.MonkeyPatch, monkeypatch: pytest.MonkeyPatch) -> None:
    # One route per scheme and host met, never forgotten: hosts that come and go (a base_url
    # per tenant, say) grew it without end.
    monkeypatch.setattr(transport_module, "MAX_ROUTES", 4)
    no_proxies.setenv("HTTP_PROXY", "http://127.0.0.1:3128")
    no_proxies.setenv("NO_PROXY", "direct.invalid")
    transport = ShardedTransport(shards=1)
    for n in (*range(20), 0):
        url = httpx.URL(f"http://provider-{n}.invalid/send")
        assert transport._proxy_for(url) == "http://127.0.0.1:3128"
    assert transport._proxy_for(httpx.URL("http://direct.invalid/send")) is None
    assert len(transport._routes) == 4
