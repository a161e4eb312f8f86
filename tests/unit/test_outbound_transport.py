"""The sender's HTTP transport against a real server on 127.0.0.1."""

from __future__ import annotations

import asyncio

import httpx

from consumers.outbound.transport import KEEPALIVE_EXPIRY_S, ShardedTransport

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
