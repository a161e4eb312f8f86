"""Slow clients cannot hold ingest's connections: a connection that sends nothing, a head sent a
byte at a time, a body no one reads dribbled after its answer were each kept open for as long as
the client liked (uvicorn's keep-alive timeout is for idle kept-alive connections only, and the
first byte of a request cancels it). Real servers on 127.0.0.1, spoken to through raw sockets;
the deadlines are short here, and the bounds on when things happen generous."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from ingest.app import create_app
from ingest.protocol import IngestProtocol
from switchboard.accounts import parse_accounts
from switchboard.serving import INGEST_HTTP
from switchboard.settings import Settings
from tests.fakes import KeepingProducer
from tests.unit.fakes import served

HEAD_S = 0.5
BODY_S = 3.0
WITHIN_S = 10.0  # what "at the deadline" is given here: a loaded machine is slow
SECRET = "c2VjcmV0LXBhc3N3b3Jk"  # what an Authorization header carries: never logged
DELIVERY = (Path(__file__).parents[2] / "examples" / "webhooks" / "infobip-delivery.json"
            ).read_bytes()
AUTHORIZATION = "Basic " + base64.b64encode(b"u:password-123").decode()


@pytest.fixture(scope="module")
async def server() -> AsyncIterator[tuple[int, KeepingProducer]]:
    accounts = parse_accounts({"accounts": {
        "acme": {"provider": "infobip", "auth": {"scheme": "basic", "username": "u",
                                                 "secrets": ["password-123"]}},
        # Bird's signature covers the body: it is read before anything is authenticated.
        "bs": {"provider": "bird", "auth": {"scheme": "bird-signature",
                                            "secrets": ["signing-key-123"]}}}})
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:1", header_timeout_s=HEAD_S,
                        body_timeout_s=BODY_S)
    app = create_app(settings, accounts)
    producer = KeepingProducer()
    app.state.handler.producer = producer
    async with served(app, http=INGEST_HTTP, timeout_keep_alive=1) as port:
        yield port, producer
        IngestProtocol.refusals.flush()


@pytest.fixture
def port(server: tuple[int, KeepingProducer]) -> int:
    return server[0]


def _count(outcome: str, provider: str = "unknown", account: str = "unknown") -> float:
    return REGISTRY.get_sample_value("switchboard_ingest_requests_total", {
        "provider": provider, "account": account, "outcome": outcome}) or 0.0


def _answers(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """Each answer on a connection: status, headers, body (all of them have a length)."""
    found = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        length = int(headers["content-length"])
        found.append((int(lines[0].split()[1]), headers, rest[:length]))
        raw = rest[length:]
    return found


async def _dribble(port: int, start: bytes, then: bytes, every_s: float = 0.05,
                   answered: bytes = b"") -> tuple[bytes, float]:
    """Send `start`, read until what came back holds `answered`, then send `then` a byte at a
    time until the server closes the connection; what came back, and how long it took."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    began = time.monotonic()
    raw = b""

    async def read() -> None:
        nonlocal raw
        # The server closing with our latest bytes unread is a reset, not an end of file: the
        # close all the same (a loaded machine's timing makes it one or the other).
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                raw += chunk

    try:
        writer.write(start)
        while answered not in raw:
            raw += await asyncio.wait_for(reader.read(65536), WITHIN_S)
        reading = asyncio.create_task(read())
        try:
            for byte in then:
                await asyncio.sleep(every_s)
                if reading.done() or time.monotonic() - began > WITHIN_S:
                    break
                with contextlib.suppress(ConnectionError):
                    writer.write(bytes([byte]))
                    await writer.drain()
            await asyncio.wait_for(reading, WITHIN_S - (time.monotonic() - began))
        finally:
            reading.cancel()
        return raw, time.monotonic() - began
    finally:
        writer.close()


HEALTHZ = b"GET /healthz HTTP/1.1\r\nhost: ingest\r\n\r\n"
HEAD_START = b"POST /webhooks/infobip/acme HTTP/1.1\r\nhost: ingest\r\n"
PADDING = b"".join(b"x-pad-%03d: %s\r\n" % (i, b"v" * 20) for i in range(400))


async def test_a_connection_that_sends_nothing_is_closed_without_an_answer(port: int) -> None:
    """Nothing to answer: closed as uvicorn closes an idle kept-alive connection, quietly."""
    before = _count("request_timeout")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        raw = await asyncio.wait_for(reader.read(), WITHIN_S)  # before: open for ever
    finally:
        writer.close()
    assert raw == b""
    assert _count("request_timeout") == before


async def test_an_idle_kept_alive_connection_is_closed_without_an_answer(port: int) -> None:
    """uvicorn's keep-alive timer, as before: an idle connection between requests is no
    request begun, and gets no 408."""
    before = _count("request_timeout")
    raw, took = await _dribble(port, HEALTHZ, b"", answered=b'{"status":"ok"}')
    assert [status for status, _, _ in _answers(raw)] == [200]
    assert took < WITHIN_S
    assert _count("request_timeout") == before


@pytest.mark.parametrize("connection", ["new", "kept-alive"])
async def test_a_head_that_does_not_arrive_in_time_gets_408_in_json(
        port: int, connection: str) -> None:
    before = _count("request_timeout")
    first = HEALTHZ if connection == "kept-alive" else b""
    # Sent after the first answer (uvicorn's keep-alive timer is running then), so that its
    # first byte is what cancels that timer.
    raw, took = await _dribble(port, first, HEAD_START + PADDING,
                               answered=b'{"status":"ok"}' if first else b"")
    answers = _answers(raw)
    assert [status for status, _, _ in answers] == ([200, 408] if first else [408])
    _, headers, body = answers[-1]
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert orjson.loads(body) == {
        "error": "request_timeout",
        "message": f"the request's URL and headers did not arrive within {HEAD_S:g} s"}
    assert took < WITHIN_S
    assert _count("request_timeout") == before + 1


async def test_a_head_in_several_reads_within_the_deadline_is_served(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for part in (b"GET /heal", b"thz HTTP/1.1\r\nhost: ingest\r\n",
                     b"connection: close\r\n\r\n"):
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(HEAD_S / 25)  # apart, so in reads of their own
        raw = await asyncio.wait_for(reader.read(), WITHIN_S)
    finally:
        writer.close()
    assert [status for status, _, _ in _answers(raw)] == [200]


UNREAD = (b"POST /webhooks/infobip/nobody HTTP/1.1\r\nhost: ingest\r\n"
          b"content-type: application/json\r\n")


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_body_no_one_reads_is_not_taken_for_longer_than_its_deadline(
        port: int, framing: str) -> None:
    """Answered (here 404: no such account) without its body being read: the connection is
    closed once the body has been arriving for the body's deadline, and nothing is answered
    again."""
    if framing == "content-length":
        head, body = UNREAD + b"content-length: 1000\r\n\r\n", b"x" * 1000
    else:
        head, body = UNREAD + b"transfer-encoding: chunked\r\n\r\n", b"1\r\nx\r\n" * 1000
    raw, took = await _dribble(port, head, body, answered=b"unknown_account")
    assert [status for status, _, _ in _answers(raw)] == [404]
    assert took < WITHIN_S  # before: open as long as the body came (here 50 s and more)


async def test_a_body_no_one_reads_still_arriving_at_its_deadline_is_counted_and_logged(
        port: int, caplog: pytest.LogCaptureFixture) -> None:
    """Closed without a trace before: an operator could not see a client that keeps sending
    bodies nobody reads. Logged as a refusal is (once a minute, the client's address), never
    with bytes of the request."""
    caplog.set_level(logging.INFO)
    IngestProtocol.refusals.flush()  # a window of its own
    caplog.clear()
    before = _unread_bodies()
    head = UNREAD + f"authorization: Basic {SECRET}\r\ncontent-length: 1000\r\n\r\n".encode()
    for _ in range(2):
        raw, took = await _dribble(port, head, b"x" * 1000, answered=b"unknown_account")
        assert [status for status, _, _ in _answers(raw)] == [404]
        assert took < WITHIN_S
    IngestProtocol.refusals.flush()
    assert _unread_bodies() == before + 2
    lines = [record.msg for record in caplog.records
             if record.name == "ingest.protocol" and isinstance(record.msg, dict)]
    assert [line["event"] for line in lines] == [
        "unread body still arriving, connection closed",
        "unread body still arriving, connection closed: 1 more in the last 60 s"]
    assert lines[0]["client"].startswith("127.0.0.1:")
    assert lines[0]["timeout_s"] == BODY_S
    assert SECRET not in caplog.text


def _unread_bodies() -> float:
    return REGISTRY.get_sample_value("switchboard_ingest_unread_bodies_total") or 0.0


async def test_a_connection_idle_after_a_body_no_one_read_is_closed(port: int) -> None:
    """The body's bytes cancelled uvicorn's keep-alive timer, armed when the answer went:
    once the body had come, nothing closed the idle connection."""
    await body_after_its_answer_then_closed(port, UNREAD)  # before: open for ever


async def body_after_its_answer_then_closed(port: int, head: bytes) -> bytes:
    """What the server sent on a connection whose request (`head`, to an unknown account) got
    its 404 before its 2-byte body came, read until the server closes it, within WITHIN_S."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + b"content-length: 2\r\n\r\n")
        await writer.drain()
        raw = b""
        while b"unknown_account" not in raw:
            raw += await asyncio.wait_for(reader.read(65536), WITHIN_S)
        writer.write(b"{}")
        await writer.drain()
        return raw + await asyncio.wait_for(reader.read(), WITHIN_S)
    finally:
        writer.close()
    assert [status for status, _, _ in _answers(raw)] == [404]


BIRD = b"POST /webhooks/bird/bs HTTP/1.1\r\nhost: ingest\r\ncontent-type: application/json\r\n"


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_webhook_body_too_slow_for_its_deadline_gets_408_and_nothing_is_stored(
        server: tuple[int, KeepingProducer], framing: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """The app reads this body: its own deadline answers (SWITCHBOARD_BODY_TIMEOUT_S), with the
    account's labels; nothing half-read is published, and nothing logs an error."""
    port, producer = server
    published = len(producer.published)
    before = _count("body_timeout", "bird", "bs")
    if framing == "content-length":
        head, body = BIRD + b"content-length: 1000\r\n\r\n", b"x" * 1000
    else:
        head, body = BIRD + b"transfer-encoding: chunked\r\n\r\n", b"1\r\nx\r\n" * 1000
    # Half the deadline's worth of bytes, then nothing: a client still writing when the
    # server closes has its unread bytes answered with a reset, which can destroy the 408
    # before it is read (seen under load); providers stall rather than dribble for ever.
    raw, took = await _dribble(port, head, body[:int(BODY_S / 2 / 0.02)], every_s=0.02)
    [(status, headers, answer)] = _answers(raw)
    assert (status, orjson.loads(answer)["error"]) == (408, "body_timeout")
    assert headers["connection"] == "close"
    assert took < WITHIN_S
    assert len(producer.published) == published
    assert _count("body_timeout", "bird", "bs") == before + 1
    assert not [r for r in caplog.records
                if r.levelno >= logging.ERROR and not r.name.startswith("aiokafka")]


async def test_a_body_slower_than_the_head_deadline_but_within_its_own_is_stored(
        server: tuple[int, KeepingProducer]) -> None:
    """The head's deadline ends with the head: a body may take its own."""
    port, producer = server
    published = len(producer.published)
    head = (b"POST /webhooks/infobip/acme HTTP/1.1\r\nhost: ingest\r\nconnection: close\r\n"
            b"content-type: application/json\r\nauthorization: %s\r\ncontent-length: %d\r\n\r\n"
            % (AUTHORIZATION.encode(), len(DELIVERY)))
    parts = [DELIVERY[i:i + len(DELIVERY) // 4 + 1] for i in range(0, len(DELIVERY),
                                                                   len(DELIVERY) // 4 + 1)]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        for part in parts:  # about 1 s in all: twice the head's deadline, a third of the body's
            await asyncio.sleep(HEAD_S / 2)
            writer.write(part)
            await writer.drain()
        raw = await asyncio.wait_for(reader.read(), WITHIN_S)
    finally:
        writer.close()
    assert [status for status, _, _ in _answers(raw)] == [200]
    assert len(producer.published) > published


async def test_slow_heads_are_logged_once_a_window_with_the_client_and_no_request_bytes(
        port: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    IngestProtocol.refusals.flush()  # a window of its own
    caplog.clear()
    start = HEAD_START + f"authorization: Basic {SECRET}\r\n".encode()
    for _ in range(3):
        await _dribble(port, start, PADDING)
    IngestProtocol.refusals.flush()
    lines = [record.msg for record in caplog.records
             if record.name == "ingest.protocol" and isinstance(record.msg, dict)]
    assert [(line["event"], line["status"]) for line in lines] == [
        ("request headers too slow refused", 408),
        ("request headers too slow refused: 2 more in the last 60 s", 408)]
    assert lines[0]["client"].startswith("127.0.0.1:")
    assert lines[0]["timeout_s"] == HEAD_S
    assert SECRET not in caplog.text
    assert not [record for record in caplog.records if record.name == "uvicorn.error"]


def _webhook(message_id: bytes) -> bytes:
    """A whole infobip webhook request, of a message id of its own (not one answered as a
    duplicate, without waiting for Kafka)."""
    body = DELIVERY.replace(b"demo-message-1", message_id)
    return (b"POST /webhooks/infobip/acme HTTP/1.1\r\nhost: ingest\r\n"
            b"content-type: application/json\r\nauthorization: %s\r\ncontent-length: %d\r\n"
            b"\r\n%s" % (AUTHORIZATION.encode(), len(body), body))


async def test_a_pipelined_head_not_read_while_the_app_is_busy_is_not_timed_out(
        server: tuple[int, KeepingProducer], monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind a request the app still answers, uvicorn stops reading (pipelined requests wait
    their turn): the rest of a head the client sent in time waits unread in the socket, and was
    refused 408 at the head's deadline, the requests before it left unanswered."""
    port, producer = server
    keep = producer.publish

    async def slow(records: list[Any]) -> None:
        await asyncio.sleep(HEAD_S * 3)  # Kafka slow to acknowledge
        await keep(records)

    monkeypatch.setattr(producer, "publish", slow)
    webhook = _webhook(b"%s-%d" % (b"pipelined", time.monotonic_ns()))
    last = b"GET /healthz HTTP/1.1\r\nhost: ingest\r\nconnection: close\r\n\r\n"
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(webhook)
        await writer.drain()
        await asyncio.sleep(HEAD_S / 5)  # its body read: the app is publishing it
        writer.write(HEALTHZ + last[:20])  # queued behind it, and the next head begun
        await writer.drain()
        await asyncio.sleep(HEAD_S / 5)
        writer.write(last[20:])  # the rest well within the deadline; not read for a while
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), WITHIN_S)
    finally:
        writer.close()
    assert [status for status, _, _ in _answers(raw)] == [200, 200, 200]


async def test_a_refusal_behind_a_queued_request_leaves_the_one_answered_quiet(
        server: tuple[int, KeepingProducer], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """A refusal ends the connection; the request the app was still answering then was not told
    so when another was queued behind it (only the latest was), and its answer raised
    'Cannot call write() after write_eof()', logged as an error of the app's."""
    port, producer = server
    keep = producer.publish

    async def slow(records: list[Any]) -> None:
        await asyncio.sleep(HEAD_S)
        await keep(records)

    monkeypatch.setattr(producer, "publish", slow)
    webhook = _webhook(b"%s-%d" % (b"refused-behind", time.monotonic_ns()))
    published = len(producer.published)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(webhook)
        await writer.drain()
        await asyncio.sleep(HEAD_S / 5)  # its body read: the app is publishing it
        writer.write(HEALTHZ + b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), WITHIN_S)
    finally:
        writer.close()
    await asyncio.sleep(HEAD_S * 2)  # the webhook's answer is written after the refusal
    assert [status for status, _, _ in _answers(raw)] == [400]
    assert len(producer.published) > published  # stored, though no one hears so
    assert not [r for r in caplog.records
                if r.levelno >= logging.ERROR and not r.name.startswith("aiokafka")]


async def test_a_pipelined_webhook_whose_body_ends_late_is_answered(
        server: tuple[int, KeepingProducer], monkeypatch: pytest.MonkeyPatch) -> None:
    """A pipelined request's body still arriving when the request before it was answered was
    taken for the body of that answered request: its late end armed the idle connection's
    deadline, and the connection was closed while the app was storing that webhook, its answer
    never sent."""
    port, producer = server
    keep = producer.publish

    async def slow(records: list[Any]) -> None:
        await asyncio.sleep(HEAD_S * 3)
        await keep(records)

    monkeypatch.setattr(producer, "publish", slow)
    second = _webhook(b"%s-%d" % (b"late-end", time.monotonic_ns()))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(_webhook(b"%s-%d" % (b"before-late-end", time.monotonic_ns())))
        await writer.drain()
        await asyncio.sleep(HEAD_S / 5)  # its body read: the app is publishing it
        writer.write(second[:-10])  # queued behind it, its body not whole
        await writer.drain()
        await asyncio.sleep(HEAD_S / 5)
        writer.write(second[-10:])
        await writer.drain()
        raw = b""
        while len(_answers(raw)) < 2:
            chunk = await asyncio.wait_for(reader.read(65536), WITHIN_S)
            if not chunk:
                break
            raw += chunk
    finally:
        writer.close()
    assert [status for status, _, _ in _answers(raw)] == [200, 200]
