"""Ctrl-C at any moment after `run` or `kafka` started the local broker stops it (stop()
ends the JVM and lets the data dir go), and the command ends normally, not by the signal."""

from __future__ import annotations

import argparse
import errno
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import switchboard.cli.run as run_module
import switchboard.topics
from switchboard.cli.run import cmd_run
from switchboard.settings import Settings


class FakeBroker:
    """start()/stop() without a JVM; `interrupt_at` raises Ctrl-C's KeyboardInterrupt there."""

    bootstrap_servers = "127.0.0.1:1"
    log_path = Path("broker.log")
    process: Any = None

    def __init__(self, interrupt_at: str) -> None:
        self.interrupt_at = interrupt_at
        self.stopped = False

    def _maybe_interrupt(self, where: str) -> None:
        if where == self.interrupt_at:
            raise KeyboardInterrupt

    def start(self) -> None:
        self._maybe_interrupt("start")

    async def wait_ready(self) -> None:
        self._maybe_interrupt("wait_ready")

    @property
    def data_dir(self) -> Path:
        self._maybe_interrupt("ready line")  # read for the line saying "ready"
        return Path(".switchboard/kafka")

    def stop(self) -> None:
        self.stopped = True


@pytest.fixture
def kafka_args() -> Iterator[argparse.Namespace]:
    """`kafka`'s arguments; cmd_run takes SIGINT, SIGTERM and SIGHUP over, as the command
    does: they are given back."""
    handlers = {signum: signal.getsignal(signum)
                for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield argparse.Namespace(kafka_only=True)
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def _run(monkeypatch: pytest.MonkeyPatch, interrupt_at: str,
         args: argparse.Namespace) -> tuple[int, FakeBroker]:
    broker = FakeBroker(interrupt_at)
    monkeypatch.setattr(run_module, "local_broker", lambda settings: broker)

    async def ensure_topics(*args: Any, **kwargs: Any) -> None:
        broker._maybe_interrupt("topics")

    monkeypatch.setattr(switchboard.topics, "ensure_topics", ensure_topics)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    return cmd_run(args, Settings()), broker


@pytest.mark.parametrize("interrupt_at", ["start", "wait_ready", "topics"])
def test_ctrl_c_while_starting_stops_the_broker(monkeypatch: pytest.MonkeyPatch,
                                                kafka_args: argparse.Namespace,
                                                interrupt_at: str) -> None:
    code, broker = _run(monkeypatch, interrupt_at, kafka_args)
    assert code == 130
    assert broker.stopped


def test_ctrl_c_as_ready_is_printed_stops_the_broker(monkeypatch: pytest.MonkeyPatch,
                                                     kafka_args: argparse.Namespace) -> None:
    code, broker = _run(monkeypatch, "ready line", kafka_args)
    assert code == 0
    assert broker.stopped


class CtrlCWhileWaiting:
    """The JVM `kafka` waits on: Ctrl-C comes while it runs; it "exits" 2 s later if that
    went unheard."""

    def wait(self) -> int:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(2)
        return 0


def test_ctrl_c_stops_kafka_even_when_started_with_sigint_ignored(
        monkeypatch: pytest.MonkeyPatch, kafka_args: argparse.Namespace) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as `switchboard kafka &` in a script
    monkeypatch.setattr(FakeBroker, "process", CtrlCWhileWaiting())
    code, broker = _run(monkeypatch, "nowhere", kafka_args)
    assert code == 0  # not 1, "Kafka exited unexpectedly"
    assert broker.stopped


class HungUpWhileWaiting:
    """The JVM `kafka` waits on: the terminal it was started from closes (SIGHUP) while it
    runs. Ended by SIGTERM if SIGHUP did not stop it."""

    def wait(self) -> int:
        signal.raise_signal(signal.SIGHUP)
        time.sleep(0.5)
        print("still running after SIGHUP", flush=True)
        signal.raise_signal(signal.SIGTERM)
        time.sleep(2)
        return 0


def hung_up_kafka(nohup: bool) -> None:
    """Run in a child process (SIGHUP's default would end the test session): `kafka`,
    ready, gets SIGHUP; `nohup`: started with SIGHUP ignored."""
    if nohup:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    patch = pytest.MonkeyPatch()
    patch.setattr(FakeBroker, "process", HungUpWhileWaiting())
    code, broker = _run(patch, "nowhere", argparse.Namespace(kafka_only=True))
    print(f"exit {code}, broker stopped: {broker.stopped}", flush=True)


@pytest.mark.parametrize("nohup", [False, True], ids=["terminal", "nohup"])
def test_sighup_stops_kafka_cleanly_unless_it_is_ignored(nohup: bool) -> None:
    # It had no handler for SIGHUP: closing the terminal ended `kafka` as a kill would, the
    # broker not stopped (its JVM shut down on its own, after the data dir was let go).
    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [sys.executable, "-c", "from tests.unit.test_cli_run_interrupt import hung_up_kafka; "
                               f"hung_up_kafka({nohup})"],
        cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True,
        timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()  # after "Kafka … ready in …" and the line to paste
    assert lines[lines.index("Ctrl-C stops it."):] == [
        "Ctrl-C stops it.",
        *(["still running after SIGHUP"] if nohup else []),
        "stopping…",
        "exit 0, broker stopped: True"]


def _reader_waiting(fifo: Path) -> int | None:
    """A writer's end of `fifo` once a reader has it open, else None (nobody reading yet)."""
    try:
        return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno != errno.ENXIO:
            raise
        return None


def test_ctrl_c_while_run_reads_its_files_exits_130_without_a_traceback(
        tmp_path: Path) -> None:
    # Ctrl-C in the first seconds of `make run` (imports, reading the accounts) printed a
    # KeyboardInterrupt traceback. The accounts file is a FIFO nobody writes, so `run` is
    # surely still reading it when Ctrl-C comes.
    fifo = tmp_path / "accounts.toml"
    os.mkfifo(fifo)
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"} | {
        "SWITCHBOARD_ACCOUNTS_FILE": str(fifo), "SWITCHBOARD_DATA_DIR": str(tmp_path / "data"),
        "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(
        [sys.executable, "-m", "switchboard.cli", "run"], cwd=Path(__file__).resolve().parents[2],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)  # Ctrl-C in a terminal signals the whole group
    writer = None
    try:
        for _ in range(600):  # bounded: up to ~30 s for it to open the file
            if (writer := _reader_waiting(fifo)) is not None or process.poll() is not None:
                break
            time.sleep(0.05)
        assert writer is not None, "run never opened its accounts file"
        os.killpg(process.pid, signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
        if writer is not None:
            os.close(writer)
    assert process.returncode == 130, output
    assert "Traceback" not in output, output
    assert not (tmp_path / "data").exists()  # no broker was started for it
