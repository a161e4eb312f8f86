"""A connection that breaks while the send request is still being written, against real servers
on 127.0.0.1: the provider has part of a request whose length was told, which no server acts
on, so the message was not sent and may be sent again. httpcore hides the WriteError (it goes
on to read an answer) and raises the read's error, which alone reads as "may have been sent"."""

from __future__ import annotations

import asyncio
import socket
import struct

import httpx
import pytest

from consumers.outbound.base import SendError
from consumers.outbound.http_errors import post_json
from consumers.outbound.transport import ShardedTransport
from tests.unit.test_outbound_limits import serving

# More than the kernel buffers of both ends hold on loopback (a few MiB each): the client is
# still writing the body when the server breaks the connection.
LARGE_TEXT = "x" * (48 * 1024 * 1024)



def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a reset (RST), as a crashing or overloaded server's connection ends."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def request_length(reader: asyncio.StreamReader) -> int:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower()
    return next(int(line.split(":", 1)[1]) for line in head.split("\r\n")
                if line.startswith("content-length:"))


async def reset_after_the_head(reader: asyncio.StreamReader,
                               writer: asyncio.StreamWriter) -> None:
    await request_length(reader)
    await reader.read(1024)  # some of the body
    reset(writer)


async def reset_after_the_whole_request(reader: asyncio.StreamReader,
                                        writer: asyncio.StreamWriter) -> None:
    await reader.readexactly(await request_length(reader))
    reset(writer)


async def send(port: int, text: str, *, timeout_s: float = 30.0) -> SendError:
    async with httpx.AsyncClient(transport=ShardedTransport(shards=1)) as client:
        with pytest.raises(SendError) as caught:
            await asyncio.wait_for(
                post_json(client, f"http://127.0.0.1:{port}/send", {"text": text}, headers={},
                          timeout_s=timeout_s),
                timeout_s + 30)
    return caught.value


async def test_a_connection_broken_while_the_request_is_written_sent_nothing() -> None:
    async with serving(reset_after_the_head) as port:
        error = await send(port, LARGE_TEXT)
    assert (error.code, error.retryable, error.maybe_sent) == ("network", True, False)
    assert error.description.endswith(
        "(the connection broke before the whole request was written: not sent)")


@pytest.mark.parametrize("text", ["short", LARGE_TEXT])
async def test_a_connection_broken_once_the_whole_request_came_may_have_sent_it(
        text: str) -> None:
    # The provider had all of it, and may have acted on it before the connection broke.
    async with serving(reset_after_the_whole_request) as port:
        error = await send(port, text)
    assert (error.code, error.retryable, error.maybe_sent) == ("network", True, True)
    assert "not sent" not in error.description
