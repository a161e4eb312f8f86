"""A request that asks for `Connection: close` (or speaks HTTP/1.0) and is answered before its
body is read (a 404, 405, a 401 on a header, a 413 by its Content-Length) gets its answer whole:
uvicorn closed the socket at once after it, its unread body made that close a reset, and the
reset destroyed the answer in the client's socket before the client read it (found by
tests/integration/test_ingest_adversarial: no answer at all to such a request with a body of
200 KB). Real servers on 127.0.0.1, spoken to through raw sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import orjson
import pytest

from ingest.protocol_refusals import LINGER_S
from switchboard.serving import INGEST_HTTP
from tests.unit.fakes import served
from tests.unit.test_ingest_protocol import acme_app

BODY = b"x" * (512 * 1024)  # more than the socket buffers hold: unread when answered
OVER_CAP = b"x" * (1024 * 1024 + 1)  # the 1 MiB cap: 413 by its Content-Length
CREDENTIALS = "authorization: Basic dTpwYXNzd29yZC0xMjM=\r\n"  # u:password-123


@pytest.fixture(scope="module")
async def port() -> AsyncIterator[int]:
    async with served(acme_app(), http=INGEST_HTTP) as port:
        yield port


async def _answer_to(port: int, head: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send the head and the whole body, then read until the server's end: the status, the
    headers and the rest (the answer's body and nothing after it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode() + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10 + LINGER_S)
    finally:
        writer.close()
    answer, _, rest = raw.partition(b"\r\n\r\n")
    lines = answer.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, rest


@pytest.mark.parametrize(("line", "headers", "body", "status", "error"), [
    ("POST /webhooks/infobip/nobody HTTP/1.1", "connection: close\r\n", BODY, 404,
     "unknown_account"),
    ("PUT /webhooks/infobip/acme HTTP/1.1", "connection: close\r\n", BODY, 405, "http_error"),
    ("POST /webhooks/infobip/acme HTTP/1.1", "connection: close\r\n", BODY, 401,
     "unauthorized"),
    ("POST /webhooks/infobip/acme HTTP/1.1", f"connection: close\r\n{CREDENTIALS}", OVER_CAP,
     413, "payload_too_large"),
    ("POST /webhooks/infobip/nobody HTTP/1.0", "", BODY, 404, "unknown_account"),
], ids=["404", "405", "401", "413", "http-1.0"])
async def test_an_answer_before_the_body_reaches_a_client_closing_after_it(
        port: int, line: str, headers: str, body: bytes, status: int, error: str) -> None:
    head = (f"{line}\r\nhost: ingest\r\ncontent-type: application/json\r\n{headers}"
            f"content-length: {len(body)}\r\n\r\n")
    got, answer_headers, rest = await _answer_to(port, head, body)
    assert got == status
    assert answer_headers.get("connection") == "close"
    assert orjson.loads(rest)["error"] == error  # the answer whole, then the end


async def test_a_client_closing_after_a_body_read_whole_is_answered_as_before(port: int) -> None:
    # Its body read (and refused: not Infobip's), the connection ends at the answer as it did.
    body = b'{"results": "no"}'
    head = (f"POST /webhooks/infobip/acme HTTP/1.1\r\nhost: ingest\r\n{CREDENTIALS}"
            f"connection: close\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n")
    got, answer_headers, rest = await _answer_to(port, head, body)
    assert got == 400 and answer_headers.get("connection") == "close"
    assert orjson.loads(rest)["error"] == "unprocessable_payload"
