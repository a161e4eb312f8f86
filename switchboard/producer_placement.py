"""Where DurableProducer's records go, and whether a call's records may go now: each topic's
partition count (asked of the cluster when the client does not know the topic yet), each
record's partition (the default partitioner's) and size, and the refusals a call gets before
any of its records joins a group (a record too large, too much waiting for Kafka, a partition
stuck or its client being replaced). Kept apart from the round trips (switchboard.producer),
which take the records once placed: placing them waits for nothing but a topic's metadata.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator, Sequence
from typing import overload

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from switchboard.murmur2 import murmur2
from switchboard.records import OutRecord
from switchboard.round_trip import BEHIND_UNANSWERED, Partition, PublishError

MAX_REQUEST_BYTES = 3 * 1024 * 1024
# While Kafka is slow or away, groups wait in memory; past this, publish fails at once.
MAX_BUFFERED_BYTES = 64 * 1024 * 1024
# Record framing (lengths, offsets, timestamps) on top of key, value and headers.
RECORD_OVERHEAD_BYTES = 64
# Hashing a key is pure Python (switchboard.murmur2); conversations repeat, so remember recent
# ones.
PARTITION_CACHE_SIZE = 65_536


def record_size(record: OutRecord) -> int:
    headers = sum(len(name) + len(value or b"") for name, value in record.headers)
    return len(record.value) + len(record.key or b"") + headers + RECORD_OVERHEAD_BYTES


class SizedRecords(Sequence[OutRecord]):
    """Records and their sizes (record_size), for a caller that has measured them: ingest
    checks each event against its topic's limit as it builds it. DurableProducer.publish takes
    these sizes as they are; any other sequence of records it measures itself. A sequence,
    not an argument beside one: stand-ins for the producer (tests, the benchmark) take it
    as the records it is."""

    __slots__ = ("_records", "_sizes")

    def __init__(self, records: list[OutRecord] | None = None, sizes: list[int] | None = None
                 ) -> None:
        """Taken as they are, not copied: `sizes[i]` is record_size(records[i])."""
        self._records = [] if records is None else records
        self._sizes = [] if sizes is None else sizes
        if len(self._records) != len(self._sizes):
            raise ValueError(f"{len(self._records)} records but {len(self._sizes)} sizes")

    def add(self, record: OutRecord, size: int | None = None) -> None:
        """`size` is record_size(record) when the caller has it, else measured here."""
        self._records.append(record)
        self._sizes.append(record_size(record) if size is None else size)

    def extend(self, other: SizedRecords) -> None:
        self._records += other._records
        self._sizes += other._sizes

    @property
    def sizes(self) -> Sequence[int]:
        return self._sizes

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[OutRecord]:
        return iter(self._records)

    @overload
    def __getitem__(self, index: int) -> OutRecord: ...
    @overload
    def __getitem__(self, index: slice) -> list[OutRecord]: ...
    def __getitem__(self, index: int | slice) -> OutRecord | list[OutRecord]:
        return self._records[index]

    def __repr__(self) -> str:
        return f"SizedRecords({self._records!r})"


class RecordPlacement:
    """Part of DurableProducer: the state it shares is set in DurableProducer.__init__."""

    _buffered: int
    _hashes: dict[bytes, int]
    _tracked: set[str]
    _tracking: AIOKafkaProducer | None
    _stuck: dict[Partition, int]
    _spoiled: set[Partition]

    def _placed(self, records: Sequence[OutRecord], topics: list[str], counts: list[int]
                ) -> tuple[list[Partition], Sequence[int]]:
        """Each record's partition and size, or the PublishError of a call whose records may
        not join a group now."""
        # Not isinstance: against an abstract class that costs a plain list 0.1 µs a call.
        sizes = (records.sizes if type(records) is SizedRecords
                 else [record_size(r) for r in records])
        too_large = max(sizes)
        if too_large > MAX_REQUEST_BYTES:
            raise PublishError(f"a record of {too_large} bytes exceeds the "
                               f"{MAX_REQUEST_BYTES}-byte limit", lasting=True)
        if self._buffered + sum(sizes) > MAX_BUFFERED_BYTES:
            raise PublishError("too many records are waiting for Kafka")
        written = [(topic, self._partition(record.key, count))
                   for record, topic, count in zip(records, topics, counts, strict=True)]
        if self._stuck and not self._stuck.keys().isdisjoint(written):
            # Queued behind the batch Kafka has not answered, its records would wait for
            # that batch; and aiokafka holds the whole round trip while its queue for the
            # partition is full. The provider retries a 503 later, as it would after waiting.
            raise PublishError(BEHIND_UNANSWERED)
        if self._spoiled and not self._spoiled.isdisjoint(written):
            # The client would have them refused as out of order (_spoil), and waiting for
            # the new one here would let later calls overtake them: the provider's retry
            # finds the new one, connected in a moment.
            raise PublishError("the Kafka client is being replaced after a failed batch "
                               "of the same partition")
        return written, sizes

    def _track(self, producer: AIOKafkaProducer, topics: set[str]) -> None:
        """Have the client's metadata refresh ask for the topics it writes. It learns of every
        topic of the cluster at its start and, as their partitions are known, never names one:
        each refresh (every NEW_PARTITIONS_WITHIN_S) would ask for all, on a shared cluster
        thousands."""
        if producer is not self._tracking:  # a new client (_take_fresh) tracks nothing yet
            self._tracking, self._tracked = producer, set()
        elif topics <= self._tracked:
            return
        for topic in topics - self._tracked:
            # A refresh at once, whose outcome nothing waits for: the partitions are known.
            producer.client.add_topic(topic)
        self._tracked |= topics

    async def _partition_counts(self, producer: AIOKafkaProducer, topics: list[str],
                                counts: list[int], deadline: float) -> list[int]:
        """`counts` with those of the topics not in the client's metadata yet (0) asked of
        the cluster, all by the deadline."""
        learnt: dict[str, int] = {}
        for topic in {topic for topic, count in zip(topics, counts, strict=True) if not count}:
            try:
                async with asyncio.timeout_at(deadline):
                    count = len(await producer.partitions_for(topic))
            except TimeoutError:
                raise PublishError(f"no metadata for topic {topic!r}") from None
            except KafkaError as exc:
                raise PublishError(f"no metadata for topic {topic!r}: {exc!r}") from exc
            if not count:
                raise PublishError(f"topic {topic!r} has no partitions")
            learnt[topic] = count
        return [count or learnt[topic] for topic, count in zip(topics, counts, strict=True)]

    def _partition(self, key: bytes | None, count: int) -> int:
        """The partition aiokafka's (and Java's) default partitioner would choose."""
        if key is None:
            return random.randrange(count)
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= PARTITION_CACHE_SIZE:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return hashed % count
