"""`switchboard replay | head`: the reader of replay's output going away stops it, as it stops
tail, and replay says on stderr what it published (tests/integration/test_replay_pipe.py has
the lines that could not be written)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from switchboard.cli import main
from switchboard.settings import get_settings


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    """Read from this test's environment, and not kept for the next test's."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@contextlib.contextmanager
def stdout_without_reader(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """stdout a pipe whose reader has gone, as `replay | head` once head has its lines (in the
    test itself: pytest sets its capture of stdout again as each test phase starts)."""
    read, write = os.pipe()
    os.close(read)
    with os.fdopen(write, "w") as stdout:
        monkeypatch.setattr(sys, "stdout", stdout)
        yield


@pytest.mark.usefixtures("fresh_settings")
def test_a_reader_gone_stops_replay_while_it_reads_not_at_the_end_of_the_window(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing written yet, so no write fails: it read on to the end of the window (a busy
    topic's 30 days) and published what it found, for nobody."""
    async def reached(*args: Any) -> None:
        pass

    async def a_long_window(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        await asyncio.sleep(10)
        return
        yield  # an async generator, as read_window is

    monkeypatch.setattr("switchboard.cli.replay.reach_kafka", reached)
    monkeypatch.setattr("ingest.replay.read_window", a_long_window)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    started = time.monotonic()
    with stdout_without_reader(monkeypatch):
        assert main(["replay", "--dry-run"]) == 141
    assert time.monotonic() - started < 5
    assert ("stopped: the reader of its output has gone, after 0 of its lines; nothing was "
            "published") in capsys.readouterr().err
