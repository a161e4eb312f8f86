"""A request sent with `Expect: 100-continue` and answered without its body being asked for (a
401 on a header, a 404, a 413 by its Content-Length) kept its connection, unannounced: the
client, never told 100 Continue, could go on with its next request without sending the body,
and that request was read as the old one's body (RFC 9110 s10.1.1: such a server should
close). Real servers on 127.0.0.1, spoken to through raw sockets."""

from __future__ import annotations

import asyncio
import base64
import select
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ingest.app import create_app
from ingest.protocol_refusals import LINGER_S
from switchboard.accounts import parse_accounts
from switchboard.serving import INGEST_HTTP
from switchboard.settings import Settings
from tests.fakes import KeepingProducer
from tests.unit.fakes import served

WITHIN_S = 10.0  # a loaded machine is slow
MAX_BODY = 4096
DELIVERY = (Path(__file__).parents[2] / "examples" / "webhooks" / "infobip-delivery.json"
            ).read_bytes()
AUTHORIZATION = "Basic " + base64.b64encode(b"u:password-123").decode()
HEALTHZ = b"GET /healthz HTTP/1.1\r\nhost: ingest\r\n\r\n"


@pytest.fixture(scope="module")
async def port() -> AsyncIterator[int]:
    accounts = parse_accounts({"accounts": {
        "acme": {"provider": "infobip", "auth": {"scheme": "basic", "username": "u",
                                                 "secrets": ["password-123"]}},
        # Bird's signature covers the body: it is read before anything is authenticated.
        "bs": {"provider": "bird", "auth": {"scheme": "bird-signature",
                                            "secrets": ["signing-key-123"]}}}})
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1", max_body_bytes=MAX_BODY),
                     accounts)
    app.state.handler.producer = KeepingProducer()
    async with served(app, http=INGEST_HTTP) as port:
        yield port


def _head(path: str, length: int, *headers: str) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "host: ingest", "content-type: application/json",
             f"content-length: {length}", "expect: 100-continue", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _answers(raw: bytes) -> list[tuple[int, dict[str, str]]]:
    """Each whole answer on a connection, 100 Continue included: status and headers."""
    found = []
    while b"\r\n\r\n" in raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        length = int(headers.get("content-length", "0"))
        if len(rest) < length:
            break
        found.append((int(lines[0].split()[1]), headers))
        raw = rest[length:]
    return found


async def _read_until(reader: asyncio.StreamReader, raw: bytes, answers: int) -> bytes:
    while len(_answers(raw)) < answers:
        chunk = await asyncio.wait_for(reader.read(65536), WITHIN_S)
        assert chunk, f"closed after {raw!r}"
        raw += chunk
    return raw


# The next request is longer than the body declared: read as that body, its end was parsed as
# a request of its own (400); the 404's body of a length that is the next request's exactly
# held the connection silently.
UNASKED = {
    "401-on-a-header": _head("/webhooks/infobip/acme", 10, "authorization: Basic bm8="),
    "404-unknown-account": _head("/webhooks/infobip/nobody", len(HEALTHZ)),
    "413-by-content-length": _head("/webhooks/infobip/acme", MAX_BODY + 1,
                                   f"authorization: {AUTHORIZATION}"),
}


@pytest.mark.parametrize("head", UNASKED.values(), ids=UNASKED.keys())
async def test_an_answer_before_the_body_was_asked_for_announces_and_makes_the_close(
        port: int, head: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    began = time.monotonic()
    try:
        writer.write(head)
        await writer.drain()
        raw = await _read_until(reader, b"", 1)
        [(status, headers)] = _answers(raw)
        assert status in (401, 404, 413)
        assert headers["connection"] == "close"
        # The client goes on without the body: its next request is not taken for it.
        writer.write(HEALTHZ)
        await writer.drain()
        rest = await asyncio.wait_for(reader.read(), WITHIN_S)  # to EOF: ended by ingest
    finally:
        writer.close()
    assert rest == b""
    assert time.monotonic() - began < WITHIN_S


async def test_a_body_sent_anyway_is_read_and_dropped_before_the_close(port: int) -> None:
    """A client that sends its body anyway (RFC 9110 lets it, and one tired of waiting for 100
    Continue does) sends it whole and reads the whole answer, then the close: closed at once,
    the body's bytes still coming got it a reset, and a client then failed its write
    (BrokenPipeError) or its read (ConnectionResetError) in place of the answer."""

    def client() -> bytes:
        # A plain blocking socket: the answer waits unread in the kernel as the body goes.
        with socket.create_connection(("127.0.0.1", port), timeout=WITHIN_S) as sock:
            sock.sendall(_head("/webhooks/infobip/nobody", 1_000_000))
            # Only once the answer is here: a body begun before it keeps the connection.
            assert select.select([sock], [], [], WITHIN_S)[0]
            sock.sendall(b"x" * 1_000_000)
            raw = b""
            while chunk := sock.recv(65536):
                raw += chunk
            return raw

    raw = await asyncio.wait_for(asyncio.to_thread(client), WITHIN_S * 2)
    [(status, headers)] = _answers(raw)
    assert (status, headers["connection"]) == (404, "close")


async def test_a_body_asked_for_keeps_its_connection(port: int) -> None:
    """The app reads Bird's body before it authenticates: the client is told 100 Continue,
    sends it, and the connection serves its next request."""
    body = b'{"id": "x"}'
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(_head("/webhooks/bird/bs", len(body), "messagebird-signature: bm8=",
                           "messagebird-request-timestamp: 1"))
        await writer.drain()
        raw = await _read_until(reader, b"", 1)
        assert [status for status, _ in _answers(raw)] == [100]
        writer.write(body)
        await writer.drain()
        raw = await _read_until(reader, raw, 2)
        writer.write(HEALTHZ)
        await writer.drain()
        raw = await _read_until(reader, raw, 3)
    finally:
        writer.close()
    answers = _answers(raw)
    assert [status for status, _ in answers] == [100, 401, 200]
    assert "connection" not in answers[1][1]


@pytest.mark.parametrize("before_answer", [
    # Whole before the answer (the client did not wait for 100 Continue): nothing of it can be
    # taken for the next request.
    len(DELIVERY),
    # Not all in the read the head came in (a body over a TCP segment or two, on the
    # internet): answered between its reads, the connection was closed, though the client was
    # sending the body and nothing of it could be taken for a request.
    len(DELIVERY) // 2,
], ids=["whole", "begun"])
async def test_a_body_sent_without_waiting_keeps_its_connection(port: int,
                                                                before_answer: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(_head("/webhooks/infobip/acme", len(DELIVERY), "authorization: Basic bm8=")
                     + DELIVERY[:before_answer])
        await writer.drain()
        raw = await _read_until(reader, b"", 1)  # the 401, on the header alone
        writer.write(DELIVERY[before_answer:] + HEALTHZ)
        await writer.drain()
        raw = await _read_until(reader, raw, 2)
    finally:
        writer.close()
    answers = _answers(raw)
    assert [status for status, _ in answers] == [401, 200]
    assert "connection" not in answers[0][1]


def test_the_linger_is_short() -> None:
    assert LINGER_S < WITHIN_S / 2  # the tests above wait for the close within WITHIN_S
