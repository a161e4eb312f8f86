"""Reading a window of a topic once: what happens when the broker stops answering."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition

from switchboard import window
from switchboard.window import WindowError, read_window

PARTITION = TopicPartition("switchboard.dead-letter.v1", 0)


class StalledConsumer:
    """A consumer whose broker went away after the window's ends were read: no record comes,
    and its stop lets out the CancelledError of its own tasks, as aiokafka's does then."""

    def __init__(self, **options: Any) -> None:
        pass

    async def start(self) -> None:
        pass

    def assign(self, partitions: list[TopicPartition]) -> None:
        pass

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(partitions, 10)

    async def beginning_offsets(self, partitions: list[TopicPartition]
                                ) -> dict[TopicPartition, int]:
        return dict.fromkeys(partitions, 0)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        pass

    async def getmany(self, *partitions: TopicPartition, timeout_ms: int,
                      max_records: int) -> dict[TopicPartition, list[Any]]:
        await asyncio.sleep(0.01)
        return {}

    async def position(self, partition: TopicPartition) -> int:
        return 0

    async def stop(self) -> None:
        raise asyncio.CancelledError


async def test_a_broker_that_stops_answering_is_said_not_a_cancellation(
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def partitions(kafka: Any, topic: str) -> list[TopicPartition]:
        return [PARTITION]

    monkeypatch.setattr(window, "AIOKafkaConsumer", StalledConsumer)
    monkeypatch.setattr(window, "topic_partitions", partitions)
    monkeypatch.setattr(window, "STALL_TIMEOUT_S", 0.05)
    with pytest.raises(WindowError, match="gave no records for 0s before the end of partitions 0"):
        async for _ in read_window("127.0.0.1:1", PARTITION.topic, role="replay",
                                   since_ms=None, until_ms=None):
            pass
