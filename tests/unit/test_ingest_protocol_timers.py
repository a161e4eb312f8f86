"""How ingest's HTTP protocol ends a connection it hangs up on: the close announced once, no
timer of its own outliving the connection. Real servers on 127.0.0.1, spoken to through raw
sockets."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import pytest

from ingest.app import create_app
from ingest.protocol import IngestProtocol
from ingest.protocol_refusals import LINGER_S
from switchboard.accounts import parse_accounts
from switchboard.settings import Settings
from tests.unit.fakes import served
from tests.unit.test_ingest_protocol import acme_app
from tests.unit.test_ingest_slow_requests import UNREAD, body_after_its_answer_then_closed

WITHIN_S = 10.0  # a loaded machine is slow


class _Tracked(IngestProtocol):
    """Ours, telling the test which connections' transports exist still, and how many ended."""

    made: ClassVar[list[weakref.ref[Any]]] = []
    lost: ClassVar[int] = 0

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        _Tracked.made.append(weakref.ref(transport))

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        _Tracked.lost += 1


@pytest.fixture(scope="module")
async def port() -> AsyncIterator[int]:
    async with served(acme_app(), http=f"{__name__}:_Tracked") as port:
        yield port


async def _until(condition: Any) -> None:
    deadline = time.monotonic() + WITHIN_S
    while not condition():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


async def test_a_connection_hung_up_on_leaves_no_timer_when_the_client_closes_first(
        port: int) -> None:
    """An Expect: 100-continue request answered without its body is answered `connection:
    close` and the connection ends after LINGER_S of reading what the client still sends; a
    client that closed at once (most do) left that timer pending, holding the transport."""
    made, lost = len(_Tracked.made), _Tracked.lost
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"POST /webhooks/infobip/nobody HTTP/1.1\r\nhost: ingest\r\n"
                     b"content-length: 10\r\nexpect: 100-continue\r\n\r\n")
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), WITHIN_S)  # to the server's end
    finally:
        writer.close()
    assert raw.startswith(b"HTTP/1.1 404 ")
    assert b"\r\nconnection: close\r\n" in raw
    began = time.monotonic()
    await _until(lambda: _Tracked.lost > lost)
    gc.collect()
    [transport] = _Tracked.made[made:]
    if time.monotonic() - began < LINGER_S:  # else the linger ended anyway: nothing shown
        assert transport() is None


async def _refusing_app(scope: Any, receive: Any, send: Any) -> None:
    """Answers 401 without asking for the body, with the connection header the path names."""
    assert scope["type"] == "http"
    given = scope["path"].strip("/").encode()
    await send({"type": "http.response.start", "status": 401,
                "headers": [(b"content-length", b"0"), (b"Connection", given)]})
    await send({"type": "http.response.body", "body": b""})


@pytest.mark.parametrize("given", ["close", "keep-alive"])
async def test_an_answer_before_the_body_was_asked_for_says_connection_close_once(
        given: str) -> None:
    """The close is announced in place of the app's own connection header: it was added
    after it, a second `connection: close` or one beside `keep-alive`."""
    async with served(_refusing_app, http=f"{__name__}:_Tracked") as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(f"POST /{given} HTTP/1.1\r\nhost: ingest\r\ncontent-length: 10\r\n"
                         "expect: 100-continue\r\n\r\n".encode())
            await writer.drain()
            raw = await asyncio.wait_for(reader.read(), WITHIN_S)  # to the server's end
        finally:
            writer.close()
    head = raw.partition(b"\r\n\r\n")[0].decode("latin-1").lower().split("\r\n")
    assert head[0].startswith("http/1.1 401 ")
    assert [line for line in head if line.startswith("connection:")] == ["connection: close"]


# Either one is short, the other far longer than the test waits.
SHORTER = {"keep-alive": (WITHIN_S * 3, 1), "head": (1.0, int(WITHIN_S * 3))}


@pytest.mark.parametrize(("head_s", "keep_alive_s"), SHORTER.values(), ids=SHORTER.keys())
async def test_a_connection_idle_after_a_body_no_one_read_has_the_keep_alive_timeout(
        head_s: float, keep_alive_s: int) -> None:
    """A body that came after its answer (a 404's) cancelled uvicorn's keep-alive timer, armed
    with the answer: the idle connection then had the head's deadline (10 s by default) in
    place of the keep-alive timeout every other idle connection has (uvicorn's 5 s). The
    head's deadline still bounds it when it is the shorter."""
    accounts = parse_accounts({"accounts": {"acme": {
        "provider": "infobip", "auth": {"scheme": "basic", "username": "u",
                                        "secrets": ["password-123"]}}}})
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1", header_timeout_s=head_s),
                     accounts)
    async with served(app, http=f"{__name__}:_Tracked", timeout_keep_alive=keep_alive_s) as port:
        raw = await body_after_its_answer_then_closed(port, UNREAD)  # not the longer's 30 s
    assert raw.startswith(b"HTTP/1.1 404 ")
    assert raw.count(b"HTTP/1.1 ") == 1
