"""The sender's transport with several provider hosts: real servers on 127.0.0.1, each on
its own port (an origin of its own), counting the connections each accepts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest

from consumers.outbound import transport as transport_module
from consumers.outbound.transport import ShardedTransport

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok"


class Server:
    """Answers "ok" to each request on a kept-alive connection, or never answers (`hang`);
    counts the connections it accepted."""

    def __init__(self, *, hang: bool = False) -> None:
        self.hang = hang
        self.connections = 0
        self.requests = 0
        self.url = ""

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                self.requests += 1
                if self.hang:
                    await reader.read()  # until the client gives up and closes
                    break
                writer.write(ANSWER)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Server]:
        server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/send"
        async with server:
            yield self
            server.close()


@contextlib.asynccontextmanager
async def servers(count: int) -> AsyncIterator[list[Server]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(Server().running()) for _ in range(count)]


async def test_sends_alternating_between_hosts_reuse_each_hosts_connections() -> None:
    # A sender serving accounts on several provider hosts: the shared shards' connections
    # went to whichever host came last, so alternating hosts closed one host's connection to
    # open another's (a TCP and TLS handshake per send). Each host now keeps its own.
    async with servers(3) as hosts, httpx.AsyncClient(transport=ShardedTransport()) as client:
        for round_ in range(30):
            for host in hosts:
                assert (await client.post(host.url, json={"n": round_})).text == "ok"
    assert [host.requests for host in hosts] == [30, 30, 30]
    assert [host.connections for host in hosts] == [1, 1, 1]


async def test_concurrent_sends_alternating_between_hosts_reuse_their_connections() -> None:
    async with servers(3) as hosts, httpx.AsyncClient(transport=ShardedTransport()) as client:

        async def sends(first: int) -> None:
            for n in range(20):
                host = hosts[(first + n) % 3]
                assert (await client.post(host.url, json={"n": n})).text == "ok"

        # 9 sends at a time, each to another host than its previous one, 180 in all
        await asyncio.wait_for(asyncio.gather(*(sends(first) for first in range(9))), 30)
    assert [host.requests for host in hosts] == [60, 60, 60]
    # at most one connection per send in flight to it, however the shards are picked
    assert all(host.connections <= 9 for host in hosts), [h.connections for h in hosts]


async def test_a_hanging_host_does_not_hold_the_connections_of_another() -> None:
    # A provider that never answers keeps its requests in flight until their timeout. With
    # the shards shared by all hosts, once its requests filled every shard's connections a
    # send to a healthy provider waited behind them.
    async with Server(hang=True).running() as hanging, Server().running() as healthy, \
            httpx.AsyncClient(transport=ShardedTransport(shards=2)) as client:
        stuck = [asyncio.create_task(client.post(hanging.url, json={}, timeout=60))
                 for _ in range(4)]  # 2 shards of 2 connections: all of them, before
        try:
            for _ in range(100):  # until each reached the hanging server (bounded)
                if hanging.requests == 4:
                    break
                await asyncio.sleep(0.05)
            assert hanging.requests == 4
            answer = await client.post(healthy.url, json={}, timeout=5)
            assert answer.text == "ok"
            # answered while the hanging host still held all its connections
            assert not any(task.done() for task in stuck)
        finally:
            for task in stuck:
                task.cancel()
            await asyncio.gather(*stuck, return_exceptions=True)


async def test_origins_past_the_cap_close_the_least_recently_used_idle_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Hosts met are kept with their idle connections; their number is bounded.
    monkeypatch.setattr(transport_module, "MAX_ORIGINS", 2)
    transport = ShardedTransport()
    async with servers(3) as hosts, httpx.AsyncClient(transport=transport) as client:
        for host in (*hosts, hosts[0]):
            assert (await client.post(host.url, json={})).text == "ok"
        assert len(transport._origins) == 2
        # the first host was closed when the third came, and connected to again
        assert [host.connections for host in hosts] == [2, 1, 1]
