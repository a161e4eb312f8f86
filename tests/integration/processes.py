"""`switchboard` subcommands as child processes, and brokers of their own, for the tests that
signal them the way users and process managers do."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import queue
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from switchboard.localkafka import LocalKafka, free_port, new_cluster_id, wait_until_usable
from switchboard.settings import Settings
from switchboard.topics import ensure_topics

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
INGEST_ACCOUNTS = """
[accounts.it-infobip]
provider = "infobip"
auth = { scheme = "basic", username = "ib", secrets = ["ib-new-secret"] }

# Omnichat reports do not echo our reference: ingest follows the sent log to correlate them.
[accounts.it-omnichat]
provider = "infobip-omnichat"
auth = { scheme = "basic", username = "oc", secrets = ["oc-secret-1"] }
"""


def ingest_environment(tmp_path: Path, bootstrap: str) -> dict[str, str]:
    """For `serve` and the workers: this broker, two test accounts, JSON logs."""
    (tmp_path / "accounts.toml").write_text(INGEST_ACCOUNTS)
    return {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "SWITCHBOARD_ACCOUNTS_FILE": str(tmp_path / "accounts.toml"),
            "SWITCHBOARD_LOG_FORMAT": "json"}


def worker_environment(bootstrap: str, prefix: str) -> dict[str, str]:
    """For a `switchboard worker`: this broker, an install of its own (`prefix`), the demo
    accounts and rules, one partition per topic it creates."""
    return os.environ | {"KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                         "SWITCHBOARD_KAFKA_NAME_PREFIX": prefix,
                         "SWITCHBOARD_ACCOUNTS_FILE": str(EXAMPLES / "accounts.toml"),
                         "SWITCHBOARD_RULES_FILE": str(EXAMPLES / "rules.toml"),
                         "SWITCHBOARD_PUBLIC_URL": "http://127.0.0.1:8080",
                         "SWITCHBOARD_TOPIC_PARTITIONS": "1"}


def switchboard(env: dict[str, str], *args: str, new_session: bool = False
                ) -> subprocess.Popen[str]:
    """`new_session`: its own process group, as a shell gives a foreground job (Ctrl-C in a
    terminal signals the whole group)."""
    return subprocess.Popen([sys.executable, "-m", "switchboard.cli", *args], env=env,
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=new_session)


@contextlib.contextmanager
def killed_if_left(process: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    """The process, killed and reaped if the test leaves it running: a failed wait or
    assertion must not leave a worker behind, consuming from the shared broker."""
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def wait_for_line(process: subprocess.Popen[str], marker: str, timeout_s: float = 120
                  ) -> list[str]:
    """The output up to the first line containing `marker`; the process (and its group, if
    it leads one) is killed when that line does not come within `timeout_s`.

    Lines are read on a thread of their own: a read blocks until the process writes, and a
    silent process must not hold the caller past the deadline. The thread stops reading at
    the marker, so the rest of the output is left to the caller."""
    assert process.stdout is not None
    stdout = process.stdout
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for _ in range(100_000):  # bounded; ends at the marker or at the end of the output
            line = stdout.readline()
            lines.put(line)
            if not line or marker in line:
                return

    reader = threading.Thread(target=read, name=f"wait-for-{marker}", daemon=True)
    reader.start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if not line:
            break
        seen.append(line)
        if marker in line:
            return seen
    if os.getpgid(process.pid) == process.pid:
        os.killpg(process.pid, signal.SIGKILL)
    else:
        process.kill()
    reader.join(5)  # the kill ends its read, unless a child still holds the pipe: a daemon
    raise AssertionError(f"no line with {marker!r} in {timeout_s}s:\n" + "".join(seen))


def broker_pid(data_dir: Path) -> int | None:
    """The process id of the local broker's JVM kept under `data_dir`, if it runs. Read from
    /proc, not pgrep: procps is not on every clean machine (Debian's slim images lack it)."""
    config = f"{data_dir}/kafka/server.properties".encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):  # the process ended meanwhile
            if config in cmdline.read_bytes():  # anywhere, as pgrep -f looked
                return int(cmdline.parent.name)
    return None


def broker_running(data_dir: Path) -> bool:
    """Whether the JVM of the local broker kept under `data_dir` still runs."""
    return broker_pid(data_dir) is not None


def tail(bootstrap: str, *args: str, prefix: str = "") -> subprocess.CompletedProcess[str]:
    """`switchboard tail` on this broker (under `prefix`), to its end: its exit code and output."""
    env = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                        "SWITCHBOARD_KAFKA_NAME_PREFIX": prefix}
    return subprocess.run([sys.executable, "-m", "switchboard.cli", "tail", *args], env=env,
                          capture_output=True, text=True, timeout=90, check=False)


def _replay(bootstrap: str, args: tuple[str, ...], prefix: str = ""
            ) -> tuple[int, list[dict[str, Any]], str]:
    env = os.environ | {"KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                        "SWITCHBOARD_KAFKA_NAME_PREFIX": prefix}
    done = subprocess.run([sys.executable, "-m", "switchboard.cli", "replay", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    return done.returncode, [orjson.loads(line) for line in done.stdout.splitlines()], done.stderr


async def replay(bootstrap: str, *args: str, since: str | None = "10m", prefix: str = ""
                 ) -> tuple[int, list[dict[str, Any]], str]:
    """The command's exit code, its JSON lines and its stderr (only this test's letters: the
    session's other tests dead-letter too)."""
    window = ("--since", since) if since else ()
    return await asyncio.to_thread(_replay, bootstrap, (*window, *args), prefix)


async def replay_stopped_midway(bootstrap: str, *args: str) -> tuple[int, bytes, str]:
    """`switchboard replay ARGS` sent SIGTERM mid-window (a supervisor's stop, as Ctrl-C is a
    user's): its exit code, stdout and stderr. Its output goes to a pipe not read yet, and once
    full replay waits there to be read, mid-window (the pipe's fill stops growing)."""
    reading_end, writing_end = os.pipe()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchboard.cli", "replay", *args,
        env=os.environ | {"KAFKA_BOOTSTRAP_SERVERS": bootstrap},
        stdout=writing_end, stderr=asyncio.subprocess.PIPE)
    os.close(writing_end)
    with os.fdopen(reading_end, "rb") as output:
        held = -1
        for _ in range(600):
            await asyncio.sleep(0.2)
            now_held = struct.unpack("i", fcntl.ioctl(output, termios.FIONREAD, b"\0" * 4))[0]
            if now_held == held and held > 32_768:
                break
            held = now_held
        else:
            raise AssertionError("replay never filled its output pipe")
        process.terminate()
        out = await asyncio.to_thread(output.read)
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out, err.decode()


async def wait_ready(base_url: str) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(300):  # bounded: up to ~60 s
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(f"{base_url}/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.2)
    raise AssertionError(f"{base_url} did not become ready")


@contextlib.asynccontextmanager
async def own_broker(data_dir: Path, partitions: int = 1) -> AsyncIterator[LocalKafka]:
    """A broker for one test that stops, pauses or loses it, or needs its first topics to be
    Switchboard's (created with `partitions` each)."""
    broker = LocalKafka(data_dir / "kafka", cache_dir=Settings().cache_dir, port=free_port(),
                        controller_port=free_port())
    await asyncio.to_thread(broker.start)
    try:
        await broker.wait_ready()
        await ensure_topics(broker.bootstrap_servers, partitions=partitions,
                            replication_factor=1)
        yield broker
    finally:
        await asyncio.to_thread(broker.stop)


async def until(check: Callable[[], object], timeout_s: float, what: str) -> None:
    """Return once `check()` is true, polled every 0.2 s; AssertionError naming `what` past
    `timeout_s` (bounded: a broker that never comes back fails the test, not hangs it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not {what} within {timeout_s}s")


@contextlib.contextmanager
def paused(broker: LocalKafka) -> Iterator[None]:
    """`broker`'s JVM stopped (SIGSTOP) within the block: its connections stay open and
    unanswered, as in a network partition. Resumed whatever the block raised."""
    assert broker.process is not None
    broker.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        broker.process.send_signal(signal.SIGCONT)


@dataclass
class LocalCluster:
    """The nodes of one local cluster by node id, each a broker and a controller."""

    brokers: dict[int, LocalKafka]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(broker.bootstrap_servers for broker in self.brokers.values())


@contextlib.asynccontextmanager
async def own_cluster(data_dir: Path, nodes: int = 3, partitions: int = 6
                      ) -> AsyncIterator[LocalCluster]:
    """A cluster of `nodes` brokers, each also a controller (all voters), with Switchboard's
    topics (`partitions` each) on every node, as users run it: a test may kill a node. Small
    heaps: the JVMs share two cores and the memory with the test."""
    controllers = {node: free_port() for node in range(1, nodes + 1)}
    cluster_id = new_cluster_id()
    cluster = LocalCluster({
        node: LocalKafka(data_dir / f"kafka-{node}", cache_dir=Settings().cache_dir,
                         port=free_port(), controller_port=port, heap="256m", node_id=node,
                         voters=controllers, cluster_id=cluster_id, replication_factor=nodes)
        for node, port in controllers.items()})
    try:
        # All launched first: each waits for a quorum of the others before it has started.
        for broker in cluster.brokers.values():
            await asyncio.to_thread(broker.launch)
        for broker in cluster.brokers.values():
            await asyncio.to_thread(broker.wait_started)
        await wait_until_usable(cluster.bootstrap_servers)
        await ensure_topics(cluster.bootstrap_servers, partitions=partitions,
                            replication_factor=nodes)
        yield cluster
    finally:
        # Together, and not waiting long: the last node's clean stop waits for a quorum that
        # has left, and the data is the test's, thrown away.
        await asyncio.gather(*(asyncio.to_thread(broker.stop, 5.0)
                               for broker in cluster.brokers.values()))
