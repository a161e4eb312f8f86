"""Reading a window of a topic once: what happens when the broker stops answering."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import TopicPartition

from switchboard import window
from switchboard.clients import KafkaConnection
from switchboard.settings import ENV_PREFIX, Settings
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


async def test_a_missing_topic_names_the_settings_to_check(
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_partitions(kafka: Any, topic: str) -> list[TopicPartition]:
        return []

    monkeypatch.setattr(window, "topic_partitions", no_partitions)
    kafka = KafkaConnection("broker-1:9092,broker-2:9092", name_prefix="staging.")
    with pytest.raises(WindowError) as caught:
        async for _ in read_window(kafka, PARTITION.topic, role="replay", since_ms=None,
                                   until_ms=None):
            pass
    message = str(caught.value)
    assert message.startswith("topic staging.switchboard.dead-letter.v1 does not exist on the "
                              "cluster at broker-1:9092,broker-2:9092: is KAFKA_BOOTSTRAP_SERVERS")
    assert "SWITCHBOARD_KAFKA_NAME_PREFIX ('staging.')" in message
    assert "SWITCHBOARD_CREATE_TOPICS=false" in message
    assert "(unset)" in window.missing_topic("127.0.0.1:9092", PARTITION.topic)


def test_the_settings_named_are_the_real_ones() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    assert window.PREFIX_ENV.removeprefix(ENV_PREFIX) in fields
    assert "CREATE_TOPICS" in fields
