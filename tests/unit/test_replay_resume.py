"""Continuing a stopped `switchboard replay`: where it got to in each partition (`settled`),
kept as letters are reported, even when Kafka fails it; `--after` read back; and the command
it prints for the rest of the window, read back by the parser to the same window and filters.
Kafka is not needed: the window and the producer are stand-ins (tests.unit.test_replay_stop);
tests/integration/test_replay_resume.py continues one on the real broker."""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import ConsumerRecord

from ingest.kept import Selection
from ingest.replay import CHUNK_LETTERS, replay
from ingest.replayer import ReplayError
from switchboard.cli import build_parser
from switchboard.cli.replay_options import continuing, parse_after, parse_window
from switchboard.producer import PublishError
from switchboard.records import OutRecord
from tests.unit.test_replay_stop import Publishing, letters


def spread(records: list[ConsumerRecord[bytes, bytes]]) -> list[ConsumerRecord[bytes, bytes]]:
    """The letters over two partitions, read interleaved as a fetch of both gives them."""
    return [ConsumerRecord(r.topic, n % 2, n // 2, r.timestamp, 0, None, r.value, None, 0,
                           r.serialized_value_size, []) for n, r in enumerate(records)]


def window(records: list[ConsumerRecord[bytes, bytes]], asked: dict[str, Any]) -> Any:
    async def read(*args: Any, **kwargs: Any) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
        asked.update(kwargs)
        for record in records:
            yield record
    return read


class RefusingAfter(Publishing):
    """Kafka acknowledging `chunks` publishes, then not answering."""

    def __init__(self, chunks: int) -> None:
        super().__init__()
        self.chunks = chunks

    async def publish(self, records: list[OutRecord]) -> None:
        if self.chunks == 0:
            raise PublishError("Kafka did not answer", lasting=False)
        self.chunks -= 1
        await super().publish(records)


async def replayed(monkeypatch: pytest.MonkeyPatch, producer: Publishing,
                   records: list[ConsumerRecord[bytes, bytes]], settled: dict[int, int],
                   stop: asyncio.Event | None = None, after: dict[int, int] | None = None
                   ) -> tuple[list[bytes], dict[str, Any]]:
    lines: list[bytes] = []
    asked: dict[str, Any] = {}
    monkeypatch.setattr("ingest.replay.DurableProducer", lambda *args, **kwargs: producer)
    monkeypatch.setattr("ingest.replay.read_window", window(records, asked))

    def emit(line: bytes) -> None:
        lines.append(line)
        if stop is not None:
            stop.set()  # a stop as the first chunk is reported

    await replay("unused:9092", source="dead-letter", since_ms=None, until_ms=None,
                 selection=Selection(), dry_run=False, emit=emit, stop=stop, after=after,
                 settled=settled)
    return lines, asked


async def test_a_stop_leaves_each_partition_settled_at_its_last_reported_letter(
        monkeypatch: pytest.MonkeyPatch) -> None:
    settled: dict[int, int] = {}
    lines, _ = await replayed(monkeypatch, Publishing(), spread(letters(3 * CHUNK_LETTERS)),
                              settled, stop=asyncio.Event())
    assert len(lines) == CHUNK_LETTERS  # the chunk being published when the stop came
    # Letters 0..199 are offsets 0..99 of each partition.
    assert settled == {0: CHUNK_LETTERS // 2 - 1, 1: CHUNK_LETTERS // 2 - 1}


async def test_kafka_failing_a_chunk_leaves_where_the_reported_ones_got_to(
        monkeypatch: pytest.MonkeyPatch) -> None:
    settled: dict[int, int] = {}
    with pytest.raises(ReplayError):
        await replayed(monkeypatch, RefusingAfter(chunks=1), spread(letters(3 * CHUNK_LETTERS)),
                       settled)
    assert settled == {0: CHUNK_LETTERS // 2 - 1, 1: CHUNK_LETTERS // 2 - 1}


async def test_after_is_given_to_the_window_and_kept_for_partitions_not_reached(
        monkeypatch: pytest.MonkeyPatch) -> None:
    settled = {0: 7, 2: 40}
    lines, asked = await replayed(monkeypatch, Publishing(), letters(5), settled,
                                  after={0: 7, 2: 40})
    assert asked["after"] == {0: 7, 2: 40}
    assert len(lines) == 5
    # The window's letters are offsets 0..4 of partition 0: never behind what was given.
    assert settled == {0: 7, 2: 40}


@pytest.mark.parametrize(("text", "after"), [
    (None, {}), ("0:1234", {0: 1234}), ("0:1234,2:17", {0: 1234, 2: 17}),
    (" 1:0 , 0:5", {1: 0, 0: 5})])
def test_after_reads_partition_offset_pairs(text: str | None, after: dict[int, int]) -> None:
    assert parse_after(text) == after


@pytest.mark.parametrize(("text", "says"), [
    ("", "PARTITION:OFFSET"), ("0", "PARTITION:OFFSET"), ("0:-1", "PARTITION:OFFSET"),
    ("a:1", "PARTITION:OFFSET"), ("0:1,", "PARTITION:OFFSET"), ("0:1,0:2", "twice")])
def test_after_of_another_form_is_refused(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_after(text)


@pytest.mark.parametrize("given", [
    ["--since", "2d", "--until", "30m", "--provider", "infobip", "--account", "acme corp",
     "--stage", "sender", "--reason", "KeyError: 'doneAt'", "--reason", "it's $HOME",
     "--include-old"],
    ["--source", "raw", "--since", "2026-11-20T08:00:00.123456+02:00", "--id", "raw-1"],
    [],
])
def test_the_command_printed_reads_back_as_the_same_window_and_filters(
        given: list[str]) -> None:
    args = build_parser().parse_args(["replay", *given])
    since_ms, until_ms = parse_window(args)
    printed = continuing(args, since_ms, until_ms, {2: 17, 0: 1234})

    words = shlex.split(printed)
    assert words[:2] == ["switchboard", "replay"]
    again = build_parser().parse_args(words[1:])
    assert parse_window(again) == (since_ms, until_ms)  # to the millisecond, not moved on
    assert again.after == "0:1234,2:17" and parse_after(again.after) == {0: 1234, 2: 17}
    for name in ("source", "provider", "account", "stage", "id", "reason", "include_old"):
        assert getattr(again, name) == getattr(args, name), name
    assert not again.dry_run
