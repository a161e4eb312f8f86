"""A request pipelined behind an answer that announced `connection: close` (an Expect:
100-continue request answered before its body was asked for) is not started: its answer
could not be written after the close (write() after write_eof() raises), yet its app ran, and
a webhook would have been stored with its sender told nothing. Such a request is parsed only
when the body and the next request arrive between the answer's check and its end: an answer
whose write waits for a client that is not reading, or, here, an app that reads the body once
its answer has begun. A real server on 127.0.0.1, spoken to through a raw socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from starlette.types import Receive, Scope, Send

from switchboard.serving import INGEST_HTTP
from tests.unit.fakes import served

WITHIN_S = 10.0  # a loaded machine is slow
STARTED: list[str] = []


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    STARTED.append(scope["path"])
    await send({"type": "http.response.start", "status": 404,
                "headers": [(b"content-length", b"2")]})
    if scope["path"] == "/answered-early":
        await receive()  # the body, and the request after it, arrive meanwhile
    await send({"type": "http.response.body", "body": b"no"})


@pytest.fixture(scope="module")
async def port() -> AsyncIterator[int]:
    async with served(_app, http=INGEST_HTTP) as port:
        yield port


async def test_a_request_pipelined_behind_the_announced_close_is_not_started(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST /answered-early HTTP/1.1\r\nhost: ingest\r\ncontent-length: 5\r\n"
                     b"expect: 100-continue\r\n\r\n")
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WITHIN_S)
        assert b"connection: close" in head
        writer.write(b"12345GET /pipelined HTTP/1.1\r\nhost: ingest\r\n\r\n")
        await writer.drain()
        rest = await asyncio.wait_for(reader.read(), WITHIN_S)  # to EOF: ended by ingest
    finally:
        writer.close()
    assert rest == b"no"
    await asyncio.sleep(0.1)  # a started request's task would have run by now
    assert STARTED == ["/answered-early"]
