"""A webhook body that stalls is answered 408 once its deadline passes, not held for ever."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from ingest.app import create_app
from ingest.deadlines import BodyDeadlines, BodyTimeout
from switchboard.accounts import parse_accounts
from switchboard.settings import Settings
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
