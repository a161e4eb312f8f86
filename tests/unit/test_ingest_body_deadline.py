"""A webhook body that stalls is answered 408 once its deadline passes, not held for ever."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import socket
import struct
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from ingest.app import create_app
from ingest.deadlines import BodyDeadlines, BodyTimeout
from switchboard.accounts import parse_accounts
from switchboard.serving import INGEST_HTTP
from switchboard.settings import Settings
from switchboard.topics import RAW
from tests.fakes import KeepingProducer
from tests.unit.fakes import served

SIGNING_KEY = "signing-key-123"
PATH = "/webhooks/bird/bs"
TIMEOUT_S = 0.3


def _app() -> tuple[Any, KeepingProducer]:
    # Bird's signature covers the body: it is read before anything is authenticated.
    accounts = parse_accounts({"accounts": {
        "bs": {"provider": "bird", "auth": {"scheme": "bird-signature",
                                            "secrets": [SIGNING_KEY]}},
    }})
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:1", body_timeout_s=TIMEOUT_S)
    app = create_app(settings, accounts)
    producer = KeepingProducer()
    app.state.handler.producer = producer
    return app, producer


def _timeouts() -> float:
    return REGISTRY.get_sample_value("switchboard_ingest_requests_total", {
        "provider": "bird", "account": "bs", "outcome": "body_timeout"}) or 0.0


def _scope() -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": PATH, "raw_path": PATH.encode(), "query_string": b"",
        "root_path": "", "server": ("127.0.0.1", 8080), "client": ("127.0.0.1", 5000),
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")],
    }


async def _call(app: Any, first: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Call the app with the `first` receive messages, then a sender that never sends more."""
    pending = list(first)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        await asyncio.Event().wait()  # stalled: neither more body nor a disconnect
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await asyncio.wait_for(app(_scope(), receive, send), timeout=10)
    return sent


@pytest.mark.parametrize("first", [
    [],  # the headers came, then nothing
    [{"type": "http.request", "body": b'{"id": ', "more_body": True}],  # part of the body
], ids=["no-body", "part-of-the-body"])
async def test_a_stalled_body_gets_408_and_nothing_is_published(
        first: list[dict[str, Any]], caplog: pytest.LogCaptureFixture) -> None:
    # Before: the request waited until the sender hung up, however long that took.
    app, producer = _app()
    before = _timeouts()
    sent = await _call(app, first)
    start, body = sent[0], sent[1]
    assert start["status"] == 408
    assert (b"connection", b"close") in start["headers"]
    error = orjson.loads(body["body"])
    assert error["error"] == "body_timeout"
    assert f"{TIMEOUT_S:g} s" in error["message"]
    assert not producer.published
    assert _timeouts() == before + 1
    assert "webhook body timed out" in caplog.text
    assert SIGNING_KEY not in caplog.text


async def test_another_cancel_is_not_taken_for_a_timeout() -> None:
    # Shutdown's cancel (uvicorn's at the grace deadline) must still cancel the request.
    app, _ = _app()
    task = asyncio.create_task(_call(app, []))
    await asyncio.sleep(TIMEOUT_S / 3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_only_the_reads_past_their_deadline_are_cancelled() -> None:
    deadlines = BodyDeadlines(0.4)
    outcomes: dict[str, str] = {}

    async def read(name: str, takes_s: float) -> None:
        task = deadlines.begin()
        try:
            await asyncio.sleep(takes_s)
            outcomes[name] = "read"
        except asyncio.CancelledError:
            deadlines.raise_if_expired(task)
            raise
        except BodyTimeout:
            raise AssertionError("raised inside the try") from None
        finally:
            deadlines.end(task)

    async def timed(name: str, takes_s: float) -> None:
        try:
            await read(name, takes_s)
        except BodyTimeout:
            outcomes[name] = "timeout"

    await asyncio.gather(timed("stalled", 5), timed("quick", 0.05), timed("late-start", 0))
    assert outcomes == {"stalled": "timeout", "quick": "read", "late-start": "read"}
    # The sweep stops with nothing left to read: a loop without requests keeps no timer.
    await asyncio.sleep(0.1)
    assert deadlines._timer is None


async def test_uvicorn_answers_a_stalled_sender_and_closes_its_connection() -> None:
    app, producer = _app()
    async with served(app) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"POST {PATH} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: "
                     "application/json\r\ncontent-length: 1000\r\n\r\n{\"id\": ".encode())
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=10)  # to EOF: closed by ingest
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert orjson.loads(body)["error"] == "body_timeout"
    assert not producer.published


# --- a sender that stops mid-body, on a real server with ingest's own protocol --------------

WITHIN_S = 30.0  # a loaded machine is slow: what "soon" is given here
PASSWORD = "password-123"
BASIC = "Basic " + base64.b64encode(f"u:{PASSWORD}".encode()).decode()
DELIVERY = (Path(__file__).parents[2] / "examples" / "webhooks" / "infobip-delivery.json"
            ).read_bytes()


def _served_app(**settings: Any) -> tuple[Any, KeepingProducer]:
    accounts = parse_accounts({"accounts": {
        "bs": {"provider": "bird", "auth": {"scheme": "bird-signature",
                                            "secrets": [SIGNING_KEY]}},
        # Basic is checked before the body is read: it stalls after authenticating.
        "acme": {"provider": "infobip", "auth": {"scheme": "basic", "username": "u",
                                                 "secrets": [PASSWORD]}},
    }})
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1", **settings), accounts)
    producer = KeepingProducer()
    app.state.handler.producer = producer
    return app, producer


def _half_a_webhook(path: str) -> bytes:
    """A head declaring DELIVERY's length, and the first half of it."""
    return (f"POST {path} HTTP/1.1\r\nhost: ingest\r\nauthorization: {BASIC}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(DELIVERY)}\r\n\r\n"
            ).encode() + DELIVERY[:len(DELIVERY) // 2]


def _outcome(outcome: str, provider: str, account: str) -> float:
    return REGISTRY.get_sample_value("switchboard_ingest_requests_total", {
        "provider": provider, "account": account, "outcome": outcome}) or 0.0


@pytest.mark.parametrize("hang_up", ["end-of-file", "reset"])
@pytest.mark.parametrize(("provider", "account"), [("bird", "bs"), ("infobip", "acme")])
async def test_a_sender_hanging_up_mid_body_is_counted_and_logged_and_nothing_is_stored(
        hang_up: str, provider: str, account: str, caplog: pytest.LogCaptureFixture) -> None:
    """No answer can reach it; the request ends at once (not at the body's deadline), as a
    disconnect: counted, logged without an error, nothing half-read published."""
    caplog.set_level(logging.INFO)
    app, producer = _served_app(body_timeout_s=60.0)
    before = _outcome("client_disconnect", provider, account)
    async with served(app, http=INGEST_HTTP) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(_half_a_webhook(f"/webhooks/{provider}/{account}"))
            await writer.drain()
            await asyncio.sleep(0.2)  # the app is reading the body
            if hang_up == "end-of-file":
                writer.write_eof()
                with contextlib.suppress(ConnectionError):
                    assert await asyncio.wait_for(reader.read(), WITHIN_S) == b""
            else:
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
            for _ in range(int(WITHIN_S / 0.05)):  # counted once the app's request ends
                if _outcome("client_disconnect", provider, account) > before:
                    break
                await asyncio.sleep(0.05)
        finally:
            writer.close()
    assert _outcome("client_disconnect", provider, account) == before + 1
    assert not producer.published
    assert "webhook sender disconnected before its body arrived" in caplog.text
    assert BASIC.split()[1] not in caplog.text
    assert not [r for r in caplog.records
                if r.levelno >= logging.ERROR and not r.name.startswith("aiokafka")]


async def test_a_stalled_body_holds_its_connection_only_until_its_408() -> None:
    """With SWITCHBOARD_HTTP_MAX_CONNECTIONS, stalled senders take their connections until
    their deadline; then they are closed, and no longer count against the limit."""
    app, producer = _served_app(body_timeout_s=3.0, http_max_connections=2)
    async with served(app, http=INGEST_HTTP) as port:
        stalled = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        try:
            for _, writer in stalled:
                writer.write(_half_a_webhook("/webhooks/infobip/acme"))
                await writer.drain()
            # While they are held (the deadline is seconds away): one too many.
            assert (await _exchange(port, _whole_webhook())).startswith(b"HTTP/1.1 503 ")
            for reader, _ in stalled:  # answered, then closed by ingest (read to its end)
                answer = await asyncio.wait_for(reader.read(), WITHIN_S)
                assert answer.startswith(b"HTTP/1.1 408 ")
        finally:
            for _, writer in stalled:
                writer.close()
        assert (await _exchange(port, _whole_webhook())).startswith(b"HTTP/1.1 200 ")
    assert [record.topic for record in producer.published].count(RAW.name) == 1


def _whole_webhook() -> bytes:
    return (f"POST /webhooks/infobip/acme HTTP/1.1\r\nhost: ingest\r\nauthorization: {BASIC}"
            f"\r\ncontent-type: application/json\r\nconnection: close\r\n"
            f"content-length: {len(DELIVERY)}\r\n\r\n").encode() + DELIVERY


async def _exchange(port: int, request: bytes) -> bytes:
    """What the server answers `request` on a connection of its own, read until it closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), WITHIN_S)
    finally:
        writer.close()
