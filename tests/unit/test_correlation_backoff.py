"""While Kafka is away (at `serve`'s start, say), the index of the sender's results tries
again less and less often, and says so once, then in a count: it logged a warning every 2 s
for as long as Kafka was away."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError

from ingest import correlation
from ingest.correlation import CorrelationIndex


class Paused:
    """asyncio as the index sees it, but its pauses are only noted: they end at once, but for
    the last, which lasts until the index stops."""

    def __init__(self, tries: int) -> None:
        self.pauses: list[float] = []
        self.tries = tries
        self.done = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        if len(self.pauses) >= self.tries:
            self.done.set()
            await asyncio.Event().wait()
        await asyncio.sleep(0)


class Answering:
    """A results reader that starts, finds the topic empty, and then loses Kafka."""

    def __init__(self, **options: Any) -> None:
        return None

    async def start(self) -> None:
        pass

    def assign(self, partitions: list[TopicPartition]) -> None:
        pass

    async def offsets_for_times(self, at: dict[TopicPartition, int]) -> dict[Any, Any]:
        return {}

    async def seek_to_end(self, *partitions: TopicPartition) -> None:
        pass

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(partitions, 0)

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}

    async def getmany(self, **options: Any) -> dict[Any, Any]:
        raise KafkaConnectionError("the broker went away")

    async def stop(self) -> None:
        pass


def kafka_away_except(answers: set[int]) -> Callable[..., Any]:
    """topic_partitions failing as with no broker, but for the tries numbered in `answers`."""
    tries = 0

    async def topic_partitions(kafka: Any, topic: str) -> list[TopicPartition]:
        nonlocal tries
        tries += 1
        if tries in answers:
            return [TopicPartition(topic, 0)]
        raise KafkaConnectionError("Unable to bootstrap from [('127.0.0.1', 9092)]")
    return topic_partitions


async def followed(monkeypatch: pytest.MonkeyPatch, tries: int,
                   answers: set[int]) -> list[float]:
    paused = Paused(tries)
    monkeypatch.setattr(correlation, "asyncio", paused)
    monkeypatch.setattr(correlation, "topic_partitions", kafka_away_except(answers))
    monkeypatch.setattr(correlation, "AIOKafkaConsumer", Answering)
    index = CorrelationIndex("unused:9092", frozenset({"infobip-omnichat"}))
    index.start()
    try:
        await asyncio.wait_for(paused.done.wait(), 5)
    finally:
        await index.stop()
    return paused.pauses


def interruptions(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str, dict[str, Any]]]:
    return [(record.levelno, record.msg["event"], record.msg) for record in caplog.records
            if isinstance(record.msg, dict) and record.name == "ingest.correlation"
            and record.msg["event"].startswith("correlation index interrupted")]


async def test_kafka_away_is_tried_again_less_and_less_often_and_said_once(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    assert await followed(monkeypatch, 8, answers=set()) == [2, 4, 8, 10, 10, 10, 10, 10]
    lines = interruptions(caplog)
    # The first in full; the rest counted, said when the index stops (or a minute is over).
    assert [(level, event) for level, event, _ in lines] == [
        (logging.WARNING, "correlation index interrupted"),
        (logging.WARNING, "correlation index interrupted: 7 more in the last 60 s")]
    first = lines[0][2]
    assert first["error"].startswith("KafkaConnectionError(")
    assert first["retry_in_s"] == 2
    assert lines[1][2]["more"] == 7


async def test_once_kafka_answered_a_new_interruption_starts_the_backoff_again(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    # Tries 1-3 fail; the 4th starts reading, then Kafka goes again.
    assert await followed(monkeypatch, 6, answers={4}) == [2, 4, 8, 2, 4, 8]
    lines = interruptions(caplog)
    assert [(event, line.get("error", "")[:21]) for _, event, line in lines] == [
        ("correlation index interrupted", "KafkaConnectionError("),
        ("correlation index interrupted: 2 more in the last 60 s", ""),
        ("correlation index interrupted", "KafkaConnectionError("),
        ("correlation index interrupted: 2 more in the last 60 s", ""),
    ]
    assert "the broker went away" in lines[2][2]["error"]
