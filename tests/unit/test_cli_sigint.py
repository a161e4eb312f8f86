"""Commands started with SIGINT ignored (a script's `switchboard tail &`) still stop on
Ctrl-C or kill -INT, as `run` and `kafka` do, instead of running on until SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from switchboard.cli import main

EXAMPLE_ACCOUNTS = Path(__file__).parents[2] / "examples" / "accounts.toml"


@pytest.fixture(autouse=True)
def kafka_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listens at 127.0.0.1:1: the commands' first look at Kafka passes all the same,
    so that they go on to where they wait."""
    async def reached(*args: Any) -> None:
        pass

    for command in ("tail", "send", "replay"):
        monkeypatch.setattr(f"switchboard.cli.{command}.reach_kafka", reached)


@pytest.mark.parametrize(("argv", "waits_in", "code"), [
    (["tail"], "switchboard.tail.tail", 130),
    (["send", "demo-infobip", "+41790001111", "--text", "hi"],
     "switchboard.outbox.send_command", 130),
    (["worker", "keywords"], "consumers.workers.run_worker", 130),
])
@pytest.mark.usefixtures("sigint_ignored")
def test_kill_int_stops_a_command_started_with_sigint_ignored(
        argv: list[str], waits_in: str, code: int, monkeypatch: pytest.MonkeyPatch) -> None:
    cancelled = []

    async def interrupted_while_waiting(*args: Any, **kwargs: Any) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        try:
            await asyncio.sleep(10)  # what Kafka takes to answer, or tail between records
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    monkeypatch.setattr(waits_in, interrupted_while_waiting)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("SWITCHBOARD_ACCOUNTS_FILE", str(EXAMPLE_ACCOUNTS))
    assert main(argv) == code
    assert cancelled, "SIGINT went unheard: the command waited on"


@pytest.mark.usefixtures("sigint_ignored")
def test_ctrl_c_stops_replay_between_letters(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """Replay takes Ctrl-C itself: it stops reading, says so, and exits 130."""
    cancelled = []

    async def interrupted_while_reading(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        os.kill(os.getpid(), signal.SIGINT)
        try:
            await asyncio.sleep(10)  # what a window of a busy topic takes to read
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        yield  # an async generator, as read_window is

    monkeypatch.setattr("ingest.replay.read_window", interrupted_while_reading)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    assert main(["replay", "--dry-run"]) == 130
    assert cancelled, "SIGINT went unheard: replay read on"
    assert "stopped by SIGINT before the end of the window" in capsys.readouterr().err


@pytest.mark.usefixtures("sigint_ignored")
def test_ctrl_c_stops_replay_while_it_waits_for_kafka_to_answer(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Not once the connect timeout is over (it was aiokafka's 30 s before there was one)."""
    async def no_answer(*args: Any) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.sleep(30)

    monkeypatch.setattr("switchboard.cli.replay.reach_kafka", no_answer)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    started = time.monotonic()
    assert main(["replay", "--dry-run"]) == 130
    assert time.monotonic() - started < 10
    assert "stopped by SIGINT before the end of the window; nothing was published" in \
        capsys.readouterr().err


@pytest.mark.usefixtures("sigint_ignored")
def test_ctrl_c_while_send_waits_for_kafka_to_answer_says_nothing_was_published(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    async def no_answer(*args: Any) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.sleep(30)

    monkeypatch.setattr("switchboard.cli.send.reach_kafka", no_answer)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("SWITCHBOARD_ACCOUNTS_FILE", str(EXAMPLE_ACCOUNTS))
    assert main(["send", "demo-infobip", "+41790001111", "--text", "hi", "--id", "c-1"]) == 130
    assert "interrupted: command c-1 was not published" in capsys.readouterr().err


def test_replay_under_nohup_reads_on_once_its_terminal_is_closed(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`nohup switchboard replay … &`, then logging out: the replay of a long window goes on
    (it stopped at SIGHUP, exit 129, as if nohup had not been asked)."""
    async def hung_up_while_reading(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        signal.raise_signal(signal.SIGHUP)
        await asyncio.sleep(0.2)
        return
        yield  # an async generator, as read_window is

    before = signal.getsignal(signal.SIGHUP)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        monkeypatch.setattr("ingest.replay.read_window", hung_up_while_reading)
        monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
        code = main(["replay", "--dry-run"])
    finally:
        signal.signal(signal.SIGHUP, before)
    assert "stopped by" not in capsys.readouterr().err
    assert code == 0
