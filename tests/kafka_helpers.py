"""Reading back what a test caused on the topics, exactly: from offsets taken before to the end."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from switchboard.producer import DurableProducer
from switchboard.records import OutRecord
from switchboard.topics import ALL_TOPICS, partitions_of

Offsets = dict[TopicPartition, int]


class TopicWatcher:
    def __init__(self, bootstrap: str, topics: tuple[str, ...] | None = None) -> None:
        self.bootstrap = bootstrap
        self.topics = topics or tuple(spec.name for spec in ALL_TOPICS)
        self._consumer: AIOKafkaConsumer | None = None
        self.partitions: list[TopicPartition] = []

    async def __aenter__(self) -> TopicWatcher:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap,
                                          enable_auto_commit=False)
        await self._consumer.start()
        for topic in self.topics:
            for partition in await partitions_of(self.bootstrap, topic):
                self.partitions.append(TopicPartition(topic, partition))
        if not self.partitions:
            await self._consumer.stop()
            raise AssertionError(f"no partitions found for {self.topics}")
        self._consumer.assign(self.partitions)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._consumer is not None
        await self._consumer.stop()

    async def snapshot(self) -> Offsets:
        assert self._consumer is not None
        ends: Offsets = await self._consumer.end_offsets(self.partitions)
        return ends

    async def beginning(self) -> Offsets:
        """The first offset still kept in each partition: `records_since` it reads them all."""
        assert self._consumer is not None
        starts: Offsets = await self._consumer.beginning_offsets(self.partitions)
        return starts

    async def records_since(self, before: Offsets, timeout_s: float = 20.0
                            ) -> dict[str, list[Any]]:
        """Every record appended after `before`, by topic, in partition order."""
        assert self._consumer is not None
        after = await self.snapshot()
        found: dict[str, list[Any]] = defaultdict(list)
        for tp in self.partitions:
            if after[tp] > before[tp]:
                self._consumer.seek(tp, before[tp])
        wanted = {tp: after[tp] for tp in self.partitions if after[tp] > before[tp]}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while wanted and loop.time() < deadline:
            batch = await self._consumer.getmany(*wanted, timeout_ms=500)
            for tp, records in batch.items():
                for record in records:
                    if record.offset < wanted.get(tp, -1):
                        found[tp.topic].append(record)
                if records and records[-1].offset + 1 >= wanted.get(tp, 0):
                    wanted.pop(tp, None)
        assert not wanted, f"records not readable in {timeout_s}s: {wanted}"
        return dict(found)


async def collect_until(watcher: TopicWatcher, before: Offsets,
                        done: Callable[[dict[str, list[Any]]], bool],
                        timeout_s: float = 45.0) -> dict[str, list[Any]]:
    """Re-read everything since `before` until `done` says enough (bounded in time)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    found: dict[str, list[Any]] = {}
    while loop.time() < deadline:
        found = await watcher.records_since(before)
        if done(found):
            return found
        await asyncio.sleep(0.3)
    raise AssertionError(f"condition not met in {timeout_s}s; saw "
                         f"{ {topic: len(records) for topic, records in found.items()} }")


async def publish(bootstrap: str, records: list[OutRecord]) -> None:
    producer = DurableProducer(bootstrap, timeout_s=15)
    await producer.start()
    try:
        await producer.publish(records)
    finally:
        await producer.stop()
