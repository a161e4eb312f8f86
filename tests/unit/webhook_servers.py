"""Bare HTTP/1.1 servers on 127.0.0.1 for the simulator's webhook tests: one that answers every
request 200 (keep-alive), recording what it was sent, and one that takes connections and never
answers, counting them. Real sockets, so httpx and its pools run as they do in production."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from simulator.webhooks import WebhookDispatcher


@dataclass
class Seen:
    connections: int = 0  # opened, ever
    open: int = 0  # not yet closed by the client
    in_flight: int = 0  # requests read and not yet answered
    most_in_flight: int = 0
    requests: list[tuple[str, bytes]] = field(default_factory=list)  # (path, body) answered


@contextlib.asynccontextmanager
async def answering(delay_s: float = 0.0) -> AsyncIterator[tuple[str, Seen]]:
    """A server answering each request 200 after `delay_s`: its URL and what it saw."""
    seen = Seen()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.connections += 1
        seen.open += 1
        try:
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    lines = head.split(b"\r\n")
                    length = next((int(line.split(b":", 1)[1]) for line in lines
                                   if line.lower().startswith(b"content-length:")), 0)
                    body = await reader.readexactly(length)
                    seen.in_flight += 1
                    seen.most_in_flight = max(seen.most_in_flight, seen.in_flight)
                    if delay_s:
                        await asyncio.sleep(delay_s)
                    seen.in_flight -= 1
                    seen.requests.append((lines[0].split(b" ")[1].decode(), body))
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    await writer.drain()
        finally:
            seen.open -= 1
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.close()


@contextlib.asynccontextmanager
async def silent() -> AsyncIterator[tuple[str, Seen]]:
    """A server that takes connections and never answers (until the block ends)."""
    seen = Seen()
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.connections += 1
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        server.close()
        for writer in held:
            writer.close()


@contextlib.asynccontextmanager
async def dispatching(ingest_url: str | None, **options: Any) -> AsyncIterator[WebhookDispatcher]:
    """A started WebhookDispatcher, stopped when the block ends however it ends."""
    dispatcher = WebhookDispatcher(ingest_url, **options)
    await dispatcher.start()
    try:
        yield dispatcher
    finally:
        await dispatcher.stop()
