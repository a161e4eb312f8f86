"""`tail`, `replay`, `send`, `worker` and `run` against a Kafka that never answers (a port that
takes the connection and says nothing, as behind a firewall dropping packets): they failed
after aiokafka's own request timeouts, 40 s, 31 s and 10 s for the tools, 16 s for a worker,
and `run` first said the cluster was ready."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from switchboard.cli.startup import CONNECT_TIMEOUT_S
from switchboard.localkafka import free_port

ROOT = Path(__file__).parents[2]


@pytest.fixture
def silent_server() -> Iterator[str]:
    """host:port of a listener that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join()
        for each in held:
            each.close()
        listener.close()


COMMANDS = {
    "tail": ["tail"],
    "replay": ["replay", "--dry-run"],
    "send": ["send", "demo-infobip", "+41790001111", "--text", "hi"],
    "worker": ["worker", "sender"],
    "run": ["run"],  # on a cluster of one's own: it starts no broker
}


def test_each_tool_gives_up_on_a_silent_kafka_at_the_same_time_in_one_line(
        silent_server: str) -> None:
    env = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": silent_server,
                        "SWITCHBOARD_ACCOUNTS_FILE": str(ROOT / "examples" / "accounts.toml"),
                        "SWITCHBOARD_HTTP_PORT": str(free_port()),
                        "SWITCHBOARD_SIMULATOR_PORT": str(free_port())}
    running = {name: subprocess.Popen([sys.executable, "-m", "switchboard.cli", *args],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, cwd=ROOT)
               for name, args in COMMANDS.items()}  # at once: one wait for them all
    for name, process in running.items():
        stdout, stderr = process.communicate(timeout=90)
        assert "ready" not in stdout, (name, stdout)  # run said so before Kafka had answered
        assert process.returncode == 1, (name, stderr)
        # The line only our own limit writes (aiokafka's timeouts end otherwise): no bound on
        # the time taken, which five interpreters starting on two busy cores make noisy.
        run_adds = ("; with KAFKA_BOOTSTRAP_SERVERS set, run starts no broker of its own "
                    "(unset it for the local one)") if name == "run" else ""
        assert stderr.splitlines()[-1] == (
            f"error: cannot reach Kafka at {silent_server}: no answer within "
            f"{CONNECT_TIMEOUT_S:g} s{run_adds}"), name
        assert "Traceback" not in stderr and "Unclosed" not in stderr, name
