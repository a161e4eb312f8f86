"""SWITCHBOARD_HTTP_MAX_CONNECTIONS: `serve` refuses a request beyond it with a 503 (the provider
retries later) instead of taking on every webhook at once. The real command, against a Kafka
that is not there (it serves all the same), spoken to through raw sockets on 127.0.0.1."""

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

from switchboard.localkafka import free_port, stop_process
from switchboard.serving import MULTIPROCESS_DIR_ENV

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_ACCOUNTS = ROOT / "examples" / "accounts.toml"
DELIVERY = (ROOT / "examples" / "webhooks" / "infobip-delivery.json").read_bytes()
AUTHORIZATION = "Basic " + base64.b64encode(b"infobip:demo-infobip-password").decode()
WITHIN_S = 30.0  # a loaded machine is slow: what "soon" is given here
HEALTHZ = b"GET /healthz HTTP/1.1\r\nhost: ingest\r\nconnection: close\r\n\r\n"


@contextlib.contextmanager
def _serve(max_connections: str, output: Path) -> Iterator[int]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("SWITCHBOARD_") and k != MULTIPROCESS_DIR_ENV}
    port = free_port()
    env = clean | {"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # never reached: not needed
                   "SWITCHBOARD_ACCOUNTS_FILE": str(EXAMPLE_ACCOUNTS),
                   "SWITCHBOARD_HTTP_PORT": str(port),
                   "SWITCHBOARD_HTTP_MAX_CONNECTIONS": max_connections,
                   "SWITCHBOARD_PRODUCE_TIMEOUT_S": "1"}
    with output.open("w") as log:
        server = subprocess.Popen([sys.executable, "-m", "switchboard.cli", "serve"], env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        # Each asked on a connection the server closes after its answer: one of ours still
        # open would count against the limit.
        while _status(_ask(port, HEALTHZ)) != 200:
            assert server.poll() is None and time.monotonic() < deadline, output.read_text()
            time.sleep(0.2)
        yield port
    finally:
        stop_process(server, 60)


def _ask(port: int, request: bytes) -> bytes:
    """What the server answers `request` on a connection of its own, until it closes it; empty
    when nothing listens yet."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=WITHIN_S) as conn:
            conn.sendall(request)
            return _read_all(conn)
    except ConnectionError:
        return b""


def _read_all(conn: socket.socket) -> bytes:
    received = b""
    while chunk := conn.recv(65536):
        received += chunk
    return received


def _status(answer: bytes) -> int | None:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None


def _read_head(conn: socket.socket) -> bytes:
    """Bytes up to the end of an answer's head (an interim one's too)."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = conn.recv(1)
        assert chunk, f"closed after {received!r}"
        received += chunk
    return received


def test_a_request_beyond_the_limit_gets_503_while_the_first_is_held(tmp_path: Path) -> None:
    with _serve("1", tmp_path / "serve.log") as port:
        with socket.create_connection(("127.0.0.1", port), timeout=WITHIN_S) as first:
            # A webhook whose body is still on its way, which the app reads: uvicorn tells the
            # client to go on when it does, so this one is in the app before the next connects.
            first.sendall(f"POST /webhooks/infobip/demo-infobip HTTP/1.1\r\nhost: ingest\r\n"
                          f"authorization: {AUTHORIZATION}\r\n"
                          f"content-type: application/json\r\n"
                          f"content-length: {len(DELIVERY)}\r\nexpect: 100-continue\r\n\r\n"
                          .encode())
            assert _read_head(first).startswith(b"HTTP/1.1 100 Continue")
            first.sendall(DELIVERY[:10])

            refused = _ask(port, HEALTHZ)
            assert _status(refused) == 503, refused
            # uvicorn's own answer, not the app's: plain text, not ingest's JSON error body.
            assert b"content-type: text/plain" in refused.lower()
            assert refused.endswith(b"\r\n\r\nService Unavailable")

            # The first was held, not refused: the app answers it once its body is whole (a
            # 503 of its own, in JSON: Kafka is not there).
            first.sendall(DELIVERY[10:])
            answer = _read_head(first)
            assert b"content-type: application/json" in answer.lower(), answer

        # Its connection closed, a request is served again.
        deadline = time.monotonic() + WITHIN_S
        while _status(_ask(port, HEALTHZ)) != 200:
            assert time.monotonic() < deadline
            time.sleep(0.2)
