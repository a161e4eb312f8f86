"""SWITCHBOARD_HTTP_MAX_CONNECTIONS: `serve` refuses a request beyond it with a 503 (the provider
retries later) instead of taking on every webhook at once: ingest's JSON error body, counted,
logged once a minute, the probes answered whatever the limit. The real command, against a
Kafka that is not there (it serves all the same), spoken to through raw sockets on 127.0.0.1."""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from switchboard.localkafka import free_port, stop_process
from switchboard.serving import MULTIPROCESS_DIR_ENV

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_ACCOUNTS = ROOT / "examples" / "accounts.toml"
DELIVERY = (ROOT / "examples" / "webhooks" / "infobip-delivery.json").read_bytes()
AUTHORIZATION = "Basic " + base64.b64encode(b"infobip:demo-infobip-password").decode()
WITHIN_S = 30.0  # a loaded machine is slow: what "soon" is given here
REFUSED_EVENT = b"request over the connection limit refused"


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nhost: ingest\r\nconnection: close\r\n\r\n".encode()


def _webhook_head(length: int, *extra: str) -> bytes:
    return "".join([
        "POST /webhooks/infobip/demo-infobip HTTP/1.1\r\nhost: ingest\r\n",
        f"authorization: {AUTHORIZATION}\r\ncontent-type: application/json\r\n",
        f"content-length: {length}\r\n", *(f"{line}\r\n" for line in extra), "\r\n"]).encode()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """`serve` with a limit of 1, and the file its output goes to."""
    output = tmp_path_factory.mktemp("serve") / "serve.log"
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("SWITCHBOARD_") and k != MULTIPROCESS_DIR_ENV}
    port = free_port()
    env = clean | {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # never reached: not needed
                   "SWITCHBOARD_ACCOUNTS_FILE": str(EXAMPLE_ACCOUNTS),
                   "SWITCHBOARD_HTTP_PORT": str(port),
                   "SWITCHBOARD_HTTP_MAX_CONNECTIONS": "1",
                   "SWITCHBOARD_PRODUCE_TIMEOUT_S": "1"}
    with output.open("w") as log:
        server = subprocess.Popen([sys.executable, "-m", "switchboard.cli", "serve"], env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while _status(_ask(port, _get("/healthz"))) != 200:
            assert server.poll() is None and time.monotonic() < deadline, output.read_text()
            time.sleep(0.2)
        yield port, output
    finally:
        stop_process(server, 60)


def _ask(port: int, request: bytes) -> bytes:
    """What the server answers `request` on a connection of its own, until it closes it; empty
    when nothing listens yet. A reset raises."""
    try:
        conn = socket.create_connection(("127.0.0.1", port), timeout=WITHIN_S)
    except ConnectionRefusedError:
        return b""
    with conn:
        conn.sendall(request)
        return _read_all(conn)


def _read_all(conn: socket.socket) -> bytes:
    received = b""
    while chunk := conn.recv(65536):
        received += chunk
    return received


def _status(answer: bytes) -> int | None:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None


def _headers(answer: bytes) -> dict[str, str]:
    head = answer.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")[1:]
    return dict(line.lower().split(": ", 1) for line in head)


def _read_head(conn: socket.socket) -> bytes:
    """Bytes up to the end of an answer's head (an interim one's too)."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = conn.recv(1)
        assert chunk, f"closed after {received!r}"
        received += chunk
    return received


@contextlib.contextmanager
def _held(port: int) -> Iterator[None]:
    """A webhook on a connection of its own whose body is still on its way while the block
    runs: the app has asked for it (100 Continue), so it is being served, filling the limit.
    Its answer (ingest's JSON 503: Kafka is not there) is read, and it is closed, after."""
    with socket.create_connection(("127.0.0.1", port), timeout=WITHIN_S) as first:
        first.sendall(_webhook_head(len(DELIVERY), "expect: 100-continue"))
        assert _read_head(first).startswith(b"HTTP/1.1 100 Continue")
        first.sendall(DELIVERY[:10])
        yield
        first.sendall(DELIVERY[10:])
        answer = _read_head(first)
        assert _status(answer) == 503, answer
        assert _headers(answer)["content-type"] == "application/json"


def _served_again(port: int) -> None:
    """Once no connection is held, a request that is not a probe is served again."""
    deadline = time.monotonic() + WITHIN_S
    while _status(_ask(port, _get("/no-such-path"))) != 404:
        assert time.monotonic() < deadline
        time.sleep(0.2)


def _refused_count(port: int) -> float:
    text = _ask(port, _get("/metrics")).partition(b"\r\n\r\n")[2].decode()
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "switchboard_ingest_requests_total"
               and sample.labels == {"provider": "unknown", "account": "unknown",
                                     "outcome": "over_capacity"})


def _assert_over_capacity(answer: bytes) -> None:
    assert _status(answer) == 503, answer
    headers = _headers(answer)
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert headers["retry-after"] == "5"
    body = orjson.loads(answer.partition(b"\r\n\r\n")[2])
    assert body["error"] == "over_capacity"
    assert body["message"] == "this server is at its limit of connections (1); retry later"


def test_a_request_beyond_the_limit_gets_a_json_503_while_the_first_is_held(
        served: tuple[int, Path]) -> None:
    port, _ = served
    with _held(port):
        _assert_over_capacity(_ask(port, _webhook_head(len(DELIVERY)) + DELIVERY))
        _assert_over_capacity(_ask(port, _get("/no-such-path")))
    _served_again(port)


def test_a_refused_request_sending_a_1_mb_body_reads_the_503(served: tuple[int, Path]) -> None:
    """The body still arriving when the 503 is written is read and dropped: closed with it
    unread, the client got a reset in place of the answer."""
    port, _ = served
    body = b'{"results": "' + b"x" * (1_048_576 - 16) + b'"}'
    with _held(port):
        _assert_over_capacity(_ask(port, _webhook_head(len(body)) + body))


def test_the_probes_are_answered_at_the_limit(served: tuple[int, Path]) -> None:
    port, _ = served
    with _held(port):
        alive = _ask(port, _get("/healthz"))
        assert _status(alive) == 200, alive
        # Answered by the app: not ready (Kafka is not there), not refused.
        ready = _ask(port, _get("/readyz"))
        assert _status(ready) == 503 and b"over_capacity" not in ready, ready


def test_refusals_are_counted_and_logged_once_a_minute(served: tuple[int, Path]) -> None:
    port, output = served
    _served_again(port)
    before, logged_before = _refused_count(port), len(output.read_bytes())
    with _held(port):
        for _ in range(5):
            _assert_over_capacity(_ask(port, _get("/no-such-path")))
    _served_again(port)
    assert _refused_count(port) == before + 5
    logged = output.read_bytes()
    # The minute's first refusal is logged (with the limit), the next summed up as it ends:
    # these five came in a few seconds, so at most a summary and a new minute's first line.
    assert REFUSED_EVENT in logged
    assert logged[logged_before:].count(REFUSED_EVENT) <= 2, logged
    assert b"Exceeded concurrency limit" not in logged
