"""SWITCHBOARD_HTTP_MAX_CONNECTIONS in ingest's protocol, in this process: `run`'s ingest keeps
it as `serve` does (test_serve_max_connections has the command), a request pipelined behind
one being answered waits its turn, and connections being hung up on no longer count. Real
servers on 127.0.0.1, spoken to through raw sockets."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson

from ingest.app import create_app
from switchboard.accounts import Accounts, parse_accounts
from switchboard.localkafka import free_port
from switchboard.runall import run_all
from switchboard.serving import INGEST_HTTP
from switchboard.settings import Settings
from tests.fakes import KeepingProducer
from tests.unit.fakes import served

WITHIN_S = 30.0  # a loaded machine is slow: what "soon" is given here
WEBHOOK = (Path(__file__).resolve().parents[2] / "examples" / "webhooks"
           / "infobip-delivery.json").read_bytes()
AUTHORIZATION = "Basic " + base64.b64encode(b"u:password-123").decode()


def _accounts() -> Accounts:
    return parse_accounts({"accounts": {"acme": {
        "provider": "infobip", "auth": {"scheme": "basic", "username": "u",
                                        "secrets": ["password-123"]}}}})


def _get(path: str, close: bool = True) -> bytes:
    connection = "connection: close\r\n" if close else ""
    return f"GET {path} HTTP/1.1\r\nhost: ingest\r\n{connection}\r\n".encode()


def _webhook(*extra: str, body: bytes = WEBHOOK) -> bytes:
    return "".join([
        "POST /webhooks/infobip/acme HTTP/1.1\r\nhost: ingest\r\n",
        f"authorization: {AUTHORIZATION}\r\ncontent-type: application/json\r\n",
        f"content-length: {len(body)}\r\n", *(f"{line}\r\n" for line in extra),
        "\r\n"]).encode() + (b"" if extra else body)


async def _answer(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], Any]:
    """The next answer on a connection: its status, headers and JSON body."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WITHIN_S)
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), WITHIN_S)
    return int(lines[0].split()[1]), headers, orjson.loads(body)


async def _ask(port: int, request: bytes) -> tuple[int, dict[str, str], Any]:
    """`request` on a connection of its own, closed after its answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        return await _answer(reader)
    finally:
        writer.close()


async def _until_served(port: int) -> None:
    """Until a request that is not a probe is served (the server up, no connection held)."""
    deadline = time.monotonic() + WITHIN_S
    while True:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            if (await _ask(port, _get("/no-such-path")))[0] == 404:
                return
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def _held(port: int) -> AsyncIterator[None]:
    """A webhook whose body the app waits for (it sent 100 Continue) while the block runs."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(_webhook("expect: 100-continue"))
        continued = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WITHIN_S)
        assert continued.startswith(b"HTTP/1.1 100 Continue")
        writer.write(WEBHOOK[:5])
        yield
    finally:
        writer.close()


def _over_capacity(answer: tuple[int, dict[str, str], Any]) -> bool:
    status, _, body = answer
    return status == 503 and body["error"] == "over_capacity"


async def test_run_refuses_a_request_beyond_the_limit_as_serve_does() -> None:
    port, stopped = free_port(), asyncio.Event()
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:1", http_port=port,
                        http_max_connections=1)
    running = asyncio.create_task(run_all(settings, _accounts(), workers=[], simulator=False,
                                          gone=stopped.is_set))
    try:
        await _until_served(port)
        async with _held(port):
            assert _over_capacity(await _ask(port, _get("/no-such-path")))
            assert (await _ask(port, _get("/healthz")))[0] == 200
        await _until_served(port)
    finally:
        stopped.set()
        await asyncio.wait_for(running, WITHIN_S)


class _GatedProducer(KeepingProducer):
    """Acknowledges a publish once `gate` is set: a webhook answered as slowly as wanted."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def publish(self, records: list[Any]) -> None:
        self.waiting.set()
        await self.gate.wait()
        await super().publish(records)


@contextlib.asynccontextmanager
async def _limited_to_one() -> AsyncIterator[tuple[int, _GatedProducer]]:
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1", http_max_connections=1),
                     _accounts())
    producer = app.state.handler.producer = _GatedProducer()
    async with served(app, http=INGEST_HTTP) as port:
        await _until_served(port)
        try:
            yield port, producer
        finally:  # a webhook still waiting would hold the server's stop
            producer.gate.set()


async def test_a_request_pipelined_behind_one_being_answered_waits_its_turn() -> None:
    """Even with the process over its limit when its head came: it adds nothing to what the
    process does at once. Refused, its 503 was written in the middle of the answer before."""
    async with _limited_to_one() as (port, producer):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(_webhook())
            await asyncio.wait_for(producer.waiting.wait(), WITHIN_S)
            # A second connection open (idle) throughout: the process is over its limit, as a
            # third is told.
            _, idle = await asyncio.open_connection("127.0.0.1", port)
            try:
                assert _over_capacity(await _ask(port, _get("/no-such-path")))
                writer.write(_get("/no-such-path"))
                await asyncio.sleep(0.2)  # its head parsed while the webhook is answered
                producer.gate.set()
                status, _, body = await _answer(reader)
                assert status == 200 and "error" not in body, body
                assert (await _answer(reader))[0] == 404
            finally:
                idle.close()
        finally:
            writer.close()


async def test_connections_being_hung_up_on_do_not_count() -> None:
    """A refused client that has not closed its end yet (it reads and drops what follows for
    a moment) no longer holds a place: the connection being served goes on being served."""
    async with _limited_to_one() as (port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(_get("/no-such-path", close=False))
            assert (await _answer(reader))[0] == 404  # served, and kept alive
            refused_reader, refused = await asyncio.open_connection("127.0.0.1", port)
            try:
                refused.write(_get("/no-such-path", close=False))
                assert _over_capacity(await _answer(refused_reader))
                # Still open on this side: the server lingers before it closes.
                writer.write(_get("/no-such-path", close=False))
                assert (await _answer(reader))[0] == 404
            finally:
                refused.close()
        finally:
            writer.close()


async def test_requests_still_answered_after_their_client_left_count() -> None:
    """A webhook whose client hung up is answered to its end (published, or not): more of them
    than the limit, and a request on the one connection open is refused until they end."""
    async with _limited_to_one() as (port, producer):
        for left in (1, 2):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            producer.waiting.clear()
            # Not the same bytes twice: an exact repeat waits for the first (ingest.dedup),
            # and is not published itself.
            writer.write(_webhook(body=WEBHOOK + b" " * left))
            await asyncio.wait_for(producer.waiting.wait(), WITHIN_S)
            writer.close()
            if left == 1:  # one still answered is within the limit, once its connection is gone
                await _until_served(port)
        assert _over_capacity(await _ask(port, _get("/no-such-path")))
        assert (await _ask(port, _get("/healthz")))[0] == 200
        producer.gate.set()
        await _until_served(port)
        assert len(producer.published) >= 2
