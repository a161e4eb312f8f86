"""A compacted Kafka topic read into memory: the latest value per key, kept current.

Used for state several workers share and must survive restarts: the ids of commands already
sent (sender) and the opt-out list (sender and bots). The topic is the durable copy; this is
the fast local view.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from switchboard.logs import get_logger
from switchboard.topics import partitions_of

log = get_logger(__name__)
V = TypeVar("V")


class CompactedTable(Generic[V]):
    def __init__(self, bootstrap_servers: str, topic: str,
                 decode: Callable[[bytes], V]) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.decode = decode
        self.values: dict[bytes, V] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []
        self._follow: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Load everything there is now; then follow new records in the background."""
        partitions = await partitions_of(self.bootstrap_servers, self.topic)
        if not partitions:
            raise RuntimeError(f"topic {self.topic} does not exist")
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap_servers,
                                    enable_auto_commit=False, auto_offset_reset="earliest")
        await consumer.start()
        self._partitions = [TopicPartition(self.topic, p) for p in partitions]
        consumer.assign(self._partitions)
        await consumer.seek_to_beginning(*self._partitions)
        self._consumer = consumer
        await self.catch_up()
        self._follow = asyncio.create_task(self._follow_forever())
        log.info("table loaded", topic=self.topic, entries=len(self.values))

    async def stop(self) -> None:
        if self._follow is not None:
            self._follow.cancel()
            await asyncio.gather(self._follow, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()

    async def catch_up(self) -> None:
        """Return once every record written before this call is in `values`."""
        assert self._consumer is not None
        ends = await self._consumer.end_offsets(self._partitions)
        async with self._lock:
            while await self._behind(ends):
                await self._poll(500)

    async def _behind(self, ends: dict[TopicPartition, int]) -> bool:
        assert self._consumer is not None
        for tp, end in ends.items():
            if await self._consumer.position(tp) < end:
                return True
        return False

    async def _follow_forever(self) -> None:
        while True:
            async with self._lock:
                await self._poll(200)
            await asyncio.sleep(0.05)

    async def _poll(self, timeout_ms: int) -> None:
        assert self._consumer is not None
        batch = await self._consumer.getmany(timeout_ms=timeout_ms)
        for records in batch.values():
            for record in records:
                if record.key is None:
                    continue
                if record.value is None:  # a tombstone deletes the key
                    self.values.pop(record.key, None)
                else:
                    try:
                        self.values[record.key] = self.decode(record.value)
                    except ValueError as exc:
                        log.error("table record ignored", topic=self.topic,
                                  offset=record.offset, error=repr(exc))

    def get(self, key: bytes) -> V | None:
        return self.values.get(key)

    def put_local(self, key: bytes, value: V) -> None:
        """Record what we just wrote to the topic ourselves, without waiting to read it back."""
        self.values[key] = value
