"""`switchboard replay` over a long window with nothing to report (a narrow filter over a day of
the raw topic) says on stderr that it reads on, with how many records: it printed nothing for
minutes, and an operator could not tell it from a replay that hung. Kafka is not needed: the
window is a stand-in of letters the filter leaves out."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiokafka import ConsumerRecord

from ingest.kept import Selection
from ingest.replay import replay
from switchboard.cli import main
from switchboard.settings import get_settings

LETTERS = 50


def window_of(count: int) -> Any:
    """read_window, of `count` dead letters of a stage no filter here selects."""
    async def window(*args: Any, **kwargs: Any) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
        now_ms = int(time.time() * 1000)
        for offset in range(count):
            value = (b'{"id": "dl-%d", "stage": "normalize", "provider": "bird", '
                     b'"account": "shop", "payload": {}}' % offset)
            yield ConsumerRecord("switchboard.dead-letter.v1", 0, offset, now_ms, 0, None,
                                 value, None, 0, len(value), [])
    return window


class Ticking:
    """A clock that moves a second each time it is read."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


async def test_a_long_read_is_said_every_interval_with_the_records_read(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ingest.replay.read_window", window_of(LETTERS))
    said: list[int] = []
    summary = await replay("unused:9092", source="dead-letter", since_ms=None, until_ms=None,
                           selection=Selection(ids=frozenset({"dl-elsewhere"})), dry_run=True,
                           emit=lambda line: None, progress=said.append, clock=Ticking())
    assert summary.read == LETTERS and summary.counts == {}
    # The clock read once a record, a second each: a line every PROGRESS_S (10) records.
    assert said == list(range(10, LETTERS + 1, 10))


@pytest.fixture
def fresh_settings() -> Iterator[None]:
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.usefixtures("fresh_settings")
def test_the_command_says_it_on_stderr_and_keeps_stdout_for_letters(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    async def reached(*args: Any) -> None:
        pass

    monkeypatch.setattr("switchboard.cli.replay.reach_kafka", reached)
    monkeypatch.setattr("ingest.replay.read_window", window_of(LETTERS))
    monkeypatch.setattr("ingest.replay.PROGRESS_S", 0.0)  # at every record
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")

    assert main(["replay", "--dry-run", "--id", "dl-elsewhere"]) == 3  # the id not found

    out, err = capsys.readouterr()
    assert out == ""
    counts = [int(n) for n in re.findall(r"reading the window: (\d+) records read so far", err)]
    assert counts == list(range(1, LETTERS + 1))
