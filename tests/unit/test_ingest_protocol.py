"""What ingest answers below the app, from uvicorn's parser: a head without end got no answer
and grew the process by twice its size, and a request the parser could not read a plain-text
400. Real servers on 127.0.0.1, spoken to through raw sockets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import REGISTRY

from bench.common import wait_http
from ingest.app import create_app
from ingest.protocol import IngestProtocol
from ingest.protocol_refusals import MAX_HEAD_BYTES, MAX_HEADERS
from switchboard.accounts import parse_accounts
from switchboard.localkafka import free_port, stop_process
from switchboard.runall import run_all
from switchboard.serving import INGEST_HTTP, MULTIPROCESS_DIR_ENV
from switchboard.settings import Settings
from tests.fakes import KeepingProducer
from tests.unit.fakes import served

EXAMPLE_ACCOUNTS = Path(__file__).parents[2] / "examples" / "accounts.toml"
SECRET = "c2VjcmV0LXBhc3N3b3Jk"  # what an Authorization header carries: never logged


def acme_app() -> Any:
    """Ingest with one Basic-auth Infobip account, `acme`, and a producer that keeps records."""
    accounts = parse_accounts({"accounts": {"acme": {
        "provider": "infobip", "auth": {"scheme": "basic", "username": "u",
                                        "secrets": ["password-123"]}}}})
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1"), accounts)
    app.state.handler.producer = KeepingProducer()
    return app


@pytest.fixture(scope="module")
async def port() -> AsyncIterator[int]:
    """Ingest served as `serve` serves it, in this process (its logs and metrics here)."""
    async with served(acme_app(), http=INGEST_HTTP) as port:
        yield port
        IngestProtocol.refusals.flush()


async def _exchange(port: int, *parts: bytes) -> bytes:
    """Send each part (as its own write), then read until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for part in parts:
            writer.write(part)
            await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def _answer(raw: bytes) -> tuple[int, dict[str, str], dict[str, Any]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, orjson.loads(body)


HOST = ("host", "ingest")


def _head(url: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"GET {url} HTTP/1.1", *(f"{n}: {v}" for n, v in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _counted(url: str, headers: list[tuple[str, str]]) -> int:
    """A head's size as the limit counts it: the URL, each header's name and value, and the
    3 bytes each takes at the least on the wire (`name:value` and CRLF)."""
    return len(url) + sum(len(name) + len(value) + 3 for name, value in headers)


def _count(outcome: str) -> float:
    return REGISTRY.get_sample_value("switchboard_ingest_requests_total", {
        "provider": "unknown", "account": "unknown", "outcome": outcome}) or 0.0


def _padding(total: int) -> list[tuple[str, str]]:
    """Headers of `total` bytes as the limit counts them (at least 12), values of 1 KiB."""
    full, rest = divmod(total - 12, 9 + 1024 + 3)
    headers = [(f"x-pad-{i:03d}", "v" * 1024) for i in range(full)]
    return [*headers, ("x-pad-end", "v" * rest)]


@pytest.mark.parametrize("at", ["bytes", "headers"])
async def test_a_head_at_the_limits_is_served(port: int, at: str) -> None:
    url, close = "/healthz?" + "q" * 1000, ("connection", "close")
    if at == "bytes":
        headers = [HOST, *_padding(MAX_HEAD_BYTES - _counted(url, [HOST, close])), close]
    else:
        headers = [HOST, *((f"x-h{i}", "v") for i in range(MAX_HEADERS - 2)), close]
    assert _counted(url, headers) <= MAX_HEAD_BYTES and len(headers) <= MAX_HEADERS
    assert _counted(url, headers) == MAX_HEAD_BYTES or len(headers) == MAX_HEADERS
    status, _, body = _answer(await _exchange(port, _head(url, headers)))
    assert (status, body) == (200, {"status": "ok"})


@pytest.mark.parametrize("over", ["one byte", "one header"])
async def test_a_head_over_a_limit_gets_431_in_json(port: int, over: str) -> None:
    url = "/healthz"
    if over == "one byte":
        headers = [HOST, *_padding(MAX_HEAD_BYTES + 1 - _counted(url, [HOST]))]
        assert _counted(url, headers) == MAX_HEAD_BYTES + 1
    else:
        headers = [HOST, *((f"x-h{i}", "v") for i in range(MAX_HEADERS))]
    before = _count("headers_too_large")
    status, answer_headers, body = _answer(await _exchange(port, _head(url, headers)))
    assert status == 431
    assert answer_headers["content-type"] == "application/json"
    assert answer_headers["connection"] == "close"
    assert body["error"] == "headers_too_large"
    assert str(MAX_HEAD_BYTES) in body["message"]
    assert _count("headers_too_large") == before + 1


@pytest.mark.parametrize("flood", ["header lines", "one value", "url"])
async def test_a_head_without_end_is_answered_431_while_it_is_still_coming(
        port: int, flood: str) -> None:
    """The parser holds a header until the next one starts, and a URL until its line ends:
    what it has not handed over counts too. Answered while the sender still sends, and read:
    closed at once, with the rest unread, the sender got a reset instead."""
    start = {"header lines": b"GET /healthz HTTP/1.1\r\nhost: ingest\r\n",
             "one value": b"GET /healthz HTTP/1.1\r\nhost: ingest\r\nx-big: ",
             "url": b"GET /healthz?q="}[flood]
    chunk = (b"x-pad: " + b"v" * 1017 + b"\r\n" if flood == "header lines" else b"v" * 1024) * 64
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    answer = asyncio.create_task(asyncio.wait_for(reader.read(), 10))
    writer.write(start)
    sent = 0
    with contextlib.suppress(ConnectionError):
        # 20 MB at most: before the limit, all of it was taken and kept, and not answered
        while sent < 20_000_000 and not answer.done():
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)
    raw = await answer
    writer.close()
    assert sent < 20_000_000  # answered before the end
    status, _, body = _answer(raw)
    assert (status, body["error"]) == (431, "headers_too_large")


@pytest.mark.parametrize("request_bytes", [
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n",  # a TLS handshake on plain HTTP
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",  # HTTP/2's preface
    b"GET /healthz HTTP/1.1\r\nhost: ingest\r\nbad name: v\r\n\r\n",
    b"POST /webhooks/infobip/acme HTTP/1.1\r\nhost: ingest\r\ncontent-length: ten\r\n\r\n",
    b"POST /webhooks/infobip/acme HTTP/1.1\r\nhost: ingest\r\ncontent-length: 4\r\n"
    b"transfer-encoding: chunked\r\n\r\n0\r\n\r\n",
    b"POST /webhooks/infobip/acme HTTP/1.1\r\nhost: ingest\r\ntransfer-encoding: chunked\r\n"
    b"\r\nzz\r\n{}\r\n0\r\n\r\n",  # a chunk size that is not hex
    b"GET /caf\xc3\xa9 HTTP/1.1\r\nhost: ingest\r\n\r\n",
], ids=["tls", "h2-preface", "header-name-space", "content-length-text",
        "content-length-and-chunked", "bad-chunk-size", "non-ascii-path"])
async def test_a_request_the_parser_cannot_read_gets_400_in_json(
        port: int, request_bytes: bytes) -> None:
    before = _count("bad_request")
    status, headers, body = _answer(await _exchange(port, request_bytes))
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert body == {"error": "bad_request", "message": "malformed HTTP request"}
    assert _count("bad_request") == before + 1


async def test_refusals_are_logged_once_a_window_without_the_request_s_bytes(
        port: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    IngestProtocol.refusals.flush()  # a window of its own
    caplog.clear()
    secret = ("authorization", f"Basic {SECRET}")
    for _ in range(3):
        await _exchange(port, _head("/healthz", [HOST, secret, ("bad name", SECRET)]))
        await _exchange(port, _head(f"/healthz?token={SECRET}",
                                    [HOST, secret, *_padding(70_000)]))
    IngestProtocol.refusals.flush()
    lines = [record.msg for record in caplog.records
             if record.name == "ingest.protocol" and isinstance(record.msg, dict)]
    assert [(line["event"], line["status"]) for line in lines] == [
        ("malformed HTTP request refused", 400),
        ("request headers too large refused", 431),
        ("malformed HTTP request refused: 2 more in the last 60 s", 400),
        ("request headers too large refused: 2 more in the last 60 s", 431),
    ]
    assert lines[0]["reason"] == "Invalid header token"  # llhttp's own words
    assert lines[0]["client"].startswith("127.0.0.1:")
    assert SECRET not in caplog.text
    assert not [record for record in caplog.records if record.name == "uvicorn.error"]


async def test_each_request_of_a_connection_has_the_whole_limit(port: int) -> None:
    """The count starts again with each request on a kept-alive connection."""
    headers = [HOST, *_padding(MAX_HEAD_BYTES - 2000)]
    one = _head("/healthz", headers)
    raw = await _exchange(port, one, one, _head("/healthz", [*headers, ("connection", "close")]))
    assert raw.count(b"HTTP/1.1 200 OK") == 3


def _rss_kib(pids: set[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def _descendants(pid: int) -> set[int]:
    found = {pid}
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        found |= _descendants(int(child))
    return found


def _settled(pid: int, workers: int) -> None:
    """Wait (bounded) until every worker process has started and stopped growing: one still
    importing the app on a loaded machine would pass for a head held in memory."""
    before = -1
    for _ in range(60):
        pids = _descendants(pid)
        now = _rss_kib(pids)
        # One process alone; with more, uvicorn's supervisor and its workers.
        if len(pids) >= (workers + 1 if workers > 1 else 1) and abs(now - before) < 1_000:
            return
        before = now
        time.sleep(0.5)


@contextlib.contextmanager
def _serve(workers: int, **settings: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`serve` with the example accounts, and `settings` as environment variables."""
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("SWITCHBOARD_") and k != MULTIPROCESS_DIR_ENV}
    port = free_port()
    env = clean | {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # never reached: not needed
                   "SWITCHBOARD_ACCOUNTS_FILE": str(EXAMPLE_ACCOUNTS),
                   "SWITCHBOARD_HTTP_PORT": str(port), "SWITCHBOARD_LOG_LEVEL": "ERROR",
                   **settings}
    server = subprocess.Popen(
        [sys.executable, "-m", "switchboard.cli", "serve", "--workers", str(workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        asyncio.run(wait_http(f"http://127.0.0.1:{port}/healthz"))
        _settled(server.pid, workers)
        yield server, port
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGTERM)
        stop_process(server, 60)


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_bounds_a_head_without_end_and_answers_in_json(workers: int) -> None:
    """Each worker process has the limit (uvicorn gives each the config). 30 MB of header
    lines grew `serve` by about 65 MB, held until the head ended, and got no answer."""
    with _serve(workers) as (server, port):
        pids = _descendants(server.pid)
        rss_before = _rss_kib(pids)
        flood = b"".join(b"x-pad-%05d: %s\r\n" % (i, b"v" * 100) for i in range(1000))
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"POST /webhooks/infobip/demo-infobip HTTP/1.1\r\nhost: ingest\r\n")
            with contextlib.suppress(ConnectionError):
                for _ in range(30_000_000 // len(flood)):
                    if select.select([sock], [], [], 0)[0]:
                        break  # answered
                    sock.sendall(flood)
            time.sleep(0.5)  # what is on its way has arrived
            grown_kib = _rss_kib(pids) - rss_before
            with contextlib.suppress(ConnectionError):
                sock.sendall(b"\r\n")
            raw = b""
            while chunk := sock.recv(65536):
                raw += chunk
        assert grown_kib < 10_000
        status, _, body = _answer(raw)
        assert (status, body["error"]) == (431, "headers_too_large")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: ingest\r\nbad name: v\r\n\r\n")
            raw = b""
            while chunk := sock.recv(65536):
                raw += chunk
        assert _answer(raw)[0::2] == (400, {"error": "bad_request",
                                            "message": "malformed HTTP request"})


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_answers_a_head_slower_than_its_setting_408(workers: int) -> None:
    """SWITCHBOARD_HEADER_TIMEOUT_S reaches the protocol of each worker process (through the
    app its factory makes). A head sent a byte every 0.2 s was taken for as long as it came."""
    with _serve(workers, SWITCHBOARD_HEADER_TIMEOUT_S="0.5") as (_, port), \
            socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST /webhooks/infobip/demo-infobip HTTP/1.1\r\nhost: ingest\r\n")
        began = time.monotonic()
        while not select.select([sock], [], [], 0.2)[0] and time.monotonic() - began < 10:
            with contextlib.suppress(ConnectionError):
                sock.sendall(b"x")  # a header name without end
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    status, headers, body = _answer(raw)
    assert (status, body["error"]) == (408, "request_timeout")
    assert headers["connection"] == "close"


async def test_a_bad_request_behind_one_in_flight_leaves_that_one_unanswered_quietly(
        port: int, caplog: pytest.LogCaptureFixture) -> None:
    """Pipelined after a good request (one read holding both): the answer is the refusal, and
    the good one's answer, once the app has it, goes nowhere without an error."""
    bad = b"GET / HTTP/1.1\r\nbad name: v\r\n\r\n"
    raw = await _exchange(port, _head("/healthz", [HOST]) + bad)
    await asyncio.sleep(0.1)  # the good one's app has answered
    assert raw.count(b"HTTP/1.1 ") == 1
    assert _answer(raw)[0] == 400
    # aiokafka's own lines are of the broker this app never reaches, not of the request.
    assert not [r for r in caplog.records
                if r.levelno >= logging.ERROR and not r.name.startswith("aiokafka")]


async def test_run_serves_ingest_with_the_same_answers_and_its_stop_sums_them_up(
        caplog: pytest.LogCaptureFixture) -> None:
    """`run` serves ingest as `serve` does (its settings' head deadline too); the stop logs
    the count held back (the app's shutdown flushes it, as it flushes the app's own
    refusals)."""
    caplog.set_level(logging.INFO)
    IngestProtocol.refusals.flush()
    caplog.clear()
    accounts = parse_accounts({"accounts": {"acme": {
        "provider": "infobip", "auth": {"scheme": "basic", "username": "u",
                                        "secrets": ["password-123"]}}}})
    port, stopped = free_port(), asyncio.Event()
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:1", http_port=port,
                        header_timeout_s=0.5)
    running = asyncio.create_task(run_all(settings, accounts, workers=[], simulator=False,
                                          gone=stopped.is_set))
    try:
        await wait_http(f"http://127.0.0.1:{port}/healthz", timeout_s=30)
        for _ in range(3):
            raw = await _exchange(port, b"GET /healthz HTTP/1.1\r\nbad name: v\r\n\r\n")
            assert _answer(raw)[0::2] == (400, {"error": "bad_request",
                                                "message": "malformed HTTP request"})
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nhost: ingest\r\n")  # and nothing more
        raw = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        assert _answer(raw)[0::2] == (408, {
            "error": "request_timeout",
            "message": "the request's URL and headers did not arrive within 0.5 s"})
    finally:
        stopped.set()
        await asyncio.wait_for(running, 30)
    assert [record.msg["event"] for record in caplog.records
            if record.name == "ingest.protocol" and isinstance(record.msg, dict)] == [
        "malformed HTTP request refused", "request headers too slow refused",
        "malformed HTTP request refused: 2 more in the last 60 s"]
