"""`switchboard tail`'s fetch loop: where the partitions are is looked up before every batch,
answered at once but after a reset. The watch for Kafka's silence around that lookup cost a
task (and a timed wait) per batch; it costs none now, and still says a reset left unanswered."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition

from switchboard import tail as tail_module

TOPIC = "switchboard.message.inbound.v1"
TP = TopicPartition(TOPIC, 0)
BATCHES = 6


class Tasks:
    """How many tasks the running loop has created since `counted()` began."""

    def __init__(self) -> None:
        self.created = 0

    @contextmanager
    def counted(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()

        def factory(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, Any],
                    **options: Any) -> asyncio.Task[Any]:
            self.created += 1
            return asyncio.Task(coro, loop=loop, **options)

        loop.set_task_factory(factory)  # type: ignore[arg-type]
        try:
            yield
        finally:
            loop.set_task_factory(None)


class Consumer:
    """One partition, one record per fetch. From fetch `reset_at` on, where the partition is
    must be asked of Kafka (an offset out of range), which answers once `answered` is set."""

    def __init__(self, tasks: Tasks, reset_at: int | None = None) -> None:
        self.assigned: set[TopicPartition] = set()
        self.offset = 0
        self.reset_at = reset_at
        self.answered = asyncio.Event()
        self.tasks = tasks
        self.tasks_at_fetch: list[int] = []  # tasks created so far, at each fetch

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def topics(self) -> set[str]:
        return {TOPIC}

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = set(partitions)

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}

    def last_poll_timestamp(self, tp: TopicPartition) -> int:
        return int(time.time() * 1000)  # every fetch answered

    async def position(self, tp: TopicPartition) -> int:
        if self.reset_at is not None and len(self.tasks_at_fetch) >= self.reset_at:
            await self.answered.wait()
        return self.offset

    async def getmany(self, timeout_ms: int) -> dict[TopicPartition, list[Any]]:
        self.tasks_at_fetch.append(self.tasks.created)
        self.offset += 1
        return {TP: [ConsumerRecord(topic=TOPIC, partition=0, offset=self.offset - 1,
                                    timestamp=0, timestamp_type=0, key=None, value=b"{}",
                                    checksum=None, serialized_key_size=0,
                                    serialized_value_size=0, headers=[])]}


async def _partitions(kafka: object, topic: str) -> list[TopicPartition]:
    return [TP]


def _tail_with(consumer: Consumer, monkeypatch: pytest.MonkeyPatch) -> Coroutine[Any, Any, None]:
    monkeypatch.setattr(tail_module, "AIOKafkaConsumer", lambda **options: consumer)
    monkeypatch.setattr(tail_module, "topic_partitions", _partitions)
    return tail_module.tail("127.0.0.1:1", [TOPIC], limit=BATCHES)


SILENT = "warning: Kafka has answered none of tail's requests for where to start"


async def _stderr_saying(text: str, capsys: pytest.CaptureFixture[str]) -> str:
    """What tail wrote on stderr until it said `text` (bounded: 2 s)."""
    err = ""
    for _ in range(200):
        err += capsys.readouterr().err
        if text in err:
            break
        await asyncio.sleep(0.01)
    return err


async def test_the_steady_loop_starts_no_task_per_batch(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    tasks = Tasks()
    consumer = Consumer(tasks)
    with tasks.counted():
        await asyncio.wait_for(_tail_with(consumer, monkeypatch), 10)
    assert len(capsys.readouterr().out.splitlines()) == BATCHES
    # One task per batch for the silence watch before; none now, past the start.
    assert consumer.tasks_at_fetch[1:] == consumer.tasks_at_fetch[:1] * (BATCHES - 1)


async def test_a_reset_kafka_leaves_unanswered_is_still_said(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(tail_module, "START_SILENT_AFTER_S", 0.0)  # said at the next loop turn
    consumer = Consumer(Tasks(), reset_at=2)
    tailing = asyncio.create_task(_tail_with(consumer, monkeypatch))
    err = await _stderr_saying(SILENT, capsys)
    assert SILENT in err
    assert not tailing.done()
    consumer.answered.set()
    await asyncio.wait_for(tailing, 10)
    assert "Kafka answers again (silent for " in err + capsys.readouterr().err


class GrowingConsumer(Consumer):
    """From fetch `reset_at` on, the topic has a second partition too, and where the first one
    is must be asked of Kafka as the new one is added."""

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0, 1} if len(self.tasks_at_fetch) >= (self.reset_at or 0) else {0}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        pass

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        pass


async def test_a_partition_added_while_kafka_is_silent_is_said(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(tail_module, "START_SILENT_AFTER_S", 0.0)  # said at the next loop turn
    consumer = GrowingConsumer(Tasks(), reset_at=2)
    tailing = asyncio.create_task(_tail_with(consumer, monkeypatch))
    err = await _stderr_saying(SILENT, capsys)
    assert SILENT in err
    assert len(consumer.tasks_at_fetch) == 2, "the wait was not the new partition's"
    consumer.answered.set()
    await asyncio.wait_for(tailing, 10)
    assert consumer.assigned == {TP, TopicPartition(TOPIC, 1)}
