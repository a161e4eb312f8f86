"""What bounds one provider call, against real servers on 127.0.0.1: its time in all (httpx
bounds each phase only) and the size of the answer kept, whatever the provider does."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import time
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from consumers.outbound.base import SendError
from consumers.outbound.http_errors import post_json
from consumers.outbound.transport import MAX_ANSWER_BYTES, ShardedTransport

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


def answering(status: int, body: bytes, *, chunked: bool = False,
              headers: str = "Content-Type: application/json\r\n") -> Serve:
    """A server giving one answer, with its length or chunked (the length not told first)."""
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}"
        writer.write(f"HTTP/1.1 {status} X\r\n{headers}{framing}\r\n\r\n".encode())
        step = 64 * 1024
        for start in range(0, len(body), step):
            part = body[start:start + step]
            writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n" if chunked else part)
            await writer.drain()
        if chunked:
            writer.write(b"0\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.5)  # let the client close first
    return serve


async def answer_of(port: int) -> httpx.Response:
    async with httpx.AsyncClient(transport=ShardedTransport(shards=1)) as client:
        return await post_json(client, f"http://127.0.0.1:{port}/send", {"to": "+1"},
                               headers={}, timeout_s=5)


HUGE = b'{"id": "' + b"x" * (MAX_ANSWER_BYTES + 10) + b'"}'


@pytest.mark.parametrize(("body", "chunked", "headers"), [
    (HUGE, False, "Content-Type: application/json\r\n"),
    (HUGE, True, "Content-Type: application/json\r\n"),  # no length told: read until too long
    # 3 KiB on the wire, 3 MiB once decoded
    (gzip.compress(b" " * 3 * MAX_ANSWER_BYTES), False, "Content-Encoding: gzip\r\n"),
])
async def test_a_2xx_too_large_for_any_send_api_is_not_read(body: bytes, chunked: bool,
                                                            headers: str) -> None:
    # It was read into memory whole, however large: a base_url pointing at a download, or a
    # provider gone wrong, could take the sender's memory.
    async with serving(answering(200, body, chunked=chunked, headers=headers)) as port:
        with pytest.raises(SendError) as caught:
            await answer_of(port)
    error = caught.value
    assert (error.code, error.retryable, error.maybe_sent) == ("bad_response", True, True)
    assert error.description.startswith(
        f"HTTP 200: an answer of more than {MAX_ANSWER_BYTES} bytes (not read: ")


async def test_a_too_large_error_keeps_its_status_and_start() -> None:
    # Its status says what went wrong (a 4xx permanent, a 429 to wait): only the body is cut.
    page = b"<html><title>Gateway error</title>" + b" " * (2 * MAX_ANSWER_BYTES)
    async with serving(answering(502, page, headers="Content-Type: text/html\r\n")) as port:
        response = await answer_of(port)
    assert response.status_code == 502
    assert response.content == page[:MAX_ANSWER_BYTES]


async def test_an_encoded_answer_is_read_decoded() -> None:
    body = b'{"messageId": "ub-1"}'
    async with serving(answering(200, gzip.compress(body), headers="Content-Encoding: gzip\r\n"
                                 "Content-Type: application/json\r\n")) as port:
        response = await answer_of(port)
    assert response.json() == {"messageId": "ub-1"}


# 64 MiB of zeros: 64 KiB on the wire, one network read. httpx inflated each read whole.
BOMB_BYTES = 64 * 1024 * 1024


def bomb(encoding: str) -> bytes:
    zeros = b"\0" * BOMB_BYTES
    if encoding == "deflate":
        return zlib.compress(zeros, 9)
    return gzip.compress(zeros, 9)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_compression_bomb_is_refused_in_bounded_memory(encoding: str) -> None:
    # The cap counted decoded bytes, but only after httpx had inflated a whole network read:
    # one read of a bomb allocated ~64 MiB before the cap saw any of it. What is decoded is
    # bounded now, whatever one compressed read would inflate to.
    body = bomb(encoding)
    assert len(body) < 128 * 1024
    async with serving(answering(200, body, headers=f"Content-Encoding: {encoding}\r\n"
                                 "Content-Type: application/json\r\n")) as port:
        tracemalloc.start()
        try:
            with pytest.raises(SendError) as caught:
                await answer_of(port)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    error = caught.value
    assert (error.code, error.retryable, error.maybe_sent) == ("bad_response", True, True)
    assert error.description.startswith(f"HTTP 200: an answer of more than {MAX_ANSWER_BYTES}")
    assert peak < 8 * MAX_ANSWER_BYTES, f"{peak / MAX_ANSWER_BYTES:.0f} MiB at the peak"


async def test_a_compression_bomb_as_an_error_keeps_its_start_in_bounded_memory() -> None:
    async with serving(answering(502, bomb("gzip"), headers="Content-Encoding: gzip\r\n"
                                 "Content-Type: text/plain\r\n")) as port:
        tracemalloc.start()
        try:
            response = await answer_of(port)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert response.status_code == 502
    assert response.content == b"\0" * MAX_ANSWER_BYTES
    assert peak < 8 * MAX_ANSWER_BYTES, f"{peak / MAX_ANSWER_BYTES:.0f} MiB at the peak"


async def test_a_deflate_answer_without_its_zlib_header_is_read() -> None:
    # Servers differ on "deflate": a zlib stream (RFC 9110) or a raw deflate one; httpx read
    # both, and so does the sender.
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    raw = compressor.compress(b'{"messageId": "wb-1"}') + compressor.flush()
    async with serving(answering(200, raw, headers="Content-Encoding: deflate\r\n"
                                 "Content-Type: application/json\r\n")) as port:
        response = await answer_of(port)
    assert response.json() == {"messageId": "wb-1"}


@pytest.mark.parametrize("encoding", ["br", "zstd", "gzip, gzip"])
async def test_an_encoding_the_sender_did_not_ask_for_is_no_answer(encoding: str) -> None:
    # Only gzip and deflate are asked for (decoded with a bound); another is not decoded at
    # all. The provider had the whole request, so it may have acted on it.
    async with serving(answering(200, b"\x0b\x02\x80{}\x03", headers=(
            f"Content-Encoding: {encoding}\r\nContent-Type: application/json\r\n"))) as port:
        with pytest.raises(SendError) as caught:
            await answer_of(port)
    error = caught.value
    assert (error.code, error.retryable, error.maybe_sent) == ("bad_response", True, True)
    assert encoding.split(",")[0] in error.description


async def test_only_the_encodings_decoded_with_a_bound_are_asked_for() -> None:
    # httpx asks for br and zstd too when their packages are installed, and decodes them
    # without a bound: the transport asks for what it decodes itself.
    heads: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        heads.append((await reader.readuntil(b"\r\n\r\n")).decode("latin-1").lower())
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
        await writer.drain()

    async with serving(serve) as port, httpx.AsyncClient(
            transport=ShardedTransport(shards=1),
            headers={"Accept-Encoding": "br, zstd, gzip"}) as client:
        await client.get(f"http://127.0.0.1:{port}/")
    assert "\r\naccept-encoding: gzip, deflate\r\n" in heads[0]
