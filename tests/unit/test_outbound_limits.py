"""What bounds one provider call, against real servers on 127.0.0.1: its time in all (httpx
bounds each phase only), whatever the provider does."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from consumers.outbound.base import SendError, post_json
from consumers.outbound.transport import ShardedTransport

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def serving(serve: Serve) -> AsyncIterator[int]:
    async def quietly(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await serve(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(quietly, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def read_request(reader: asyncio.StreamReader) -> None:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
    length = next((int(line.split(":", 1)[1]) for line in head.split("\r\n")
                   if line.startswith("content-length:")), 0)
    await reader.readexactly(length)


async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers at once, then one byte of its body every 0.2 s: 8 s in all."""
    await read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n")
    for _ in range(40):
        writer.write(b" ")
        await writer.drain()
        await asyncio.sleep(0.2)


async def post(port: int, *, scheme: str = "http", idempotent: bool = False,
               timeout_s: float = 1.0) -> tuple[SendError, float]:
    started = time.monotonic()
    async with httpx.AsyncClient(transport=ShardedTransport(shards=1)) as client:
        with pytest.raises(SendError) as caught:
            await post_json(client, f"{scheme}://127.0.0.1:{port}/send", {"to": "+1"},
                            headers={}, timeout_s=timeout_s, idempotent=idempotent)
    return caught.value, time.monotonic() - started


async def test_a_provider_trickling_its_answer_is_cut_off_at_timeout_s() -> None:
    # Each byte came well within httpx's read timeout, which applies to each read: the call
    # went on for as long as the provider kept sending, past timeout_s, holding its slot.
    async with serving(trickle) as port:
        error, took = await post(port)
    assert took < 3
    assert (error.code, error.retryable, error.maybe_sent) == ("timeout", True, True)
    assert error.description == "timed out after 1.0s (the whole answer had not come)"


async def test_a_trickled_token_answer_may_be_asked_for_again() -> None:
    async with serving(trickle) as port:
        error, took = await post(port, idempotent=True)
    assert took < 3
    assert (error.code, error.retryable, error.maybe_sent) == ("timeout", True, False)


async def test_a_call_stuck_before_its_request_left_was_not_sent() -> None:
    # The TLS handshake never ends: nothing of the request left, whichever time limit ends it.
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)  # the ClientHello, never answered
        await asyncio.sleep(10)

    async with serving(silent) as port:
        error, took = await post(port, scheme="https", timeout_s=0.5)
    assert took < 2
    assert (error.code, error.retryable, error.maybe_sent) == ("timeout", True, False)
