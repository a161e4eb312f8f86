"""Stand-ins for aiokafka's consumer, as the worker runtime uses it, over partition TP."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata

from consumers import assignment
from consumers import runtime as runtime_module
from consumers.assignment import _CommitOnRevoke
from consumers.handling import Handler
from consumers.runtime import WorkerRuntime
from tests.fakes import KeepingProducer

TP = TopicPartition("t", 0)


class Uncommitted:
    """Where the runtime resumes a partition given, as it asks aiokafka's consumer
    (consumers.positions): the group has no commit of it, and none of its records was
    deleted."""

    @property
    def _coordinator(self) -> SimpleNamespace:
        return SimpleNamespace(fetch_committed_offsets=self._no_commits)

    async def _no_commits(self, partitions: list[TopicPartition]
                          ) -> dict[TopicPartition, OffsetAndMetadata]:
        return {}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0, 1}

    async def beginning_offsets(self, partitions: list[TopicPartition]
                                ) -> dict[TopicPartition, int]:
        return dict.fromkeys(partitions, 0)


class FakeConsumer:
    """What the runtime asks of aiokafka's consumer around a rebalance."""

    def __init__(self, assigned: set[TopicPartition]) -> None:
        self.assigned = assigned
        self.commits: list[dict[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def partitions_for_topic(self, topic: str) -> set[int]:
        """Kafka's metadata: no topic deleted (consumers.commits asks, of a commit unanswered);
        more partitions than any test assigns."""
        return set(range(16))

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        assert set(offsets) <= self.assigned, "aiokafka refuses unassigned partitions"
        self.commits.append({tp: o.offset for tp, o in offsets.items()})


class OneRecordConsumer:
    """A consumer whose partition `tp` holds one record (at `offset`), fetched once; it keeps
    what is committed, for a test to look at."""

    def __init__(self, tp: TopicPartition, offset: int, key: bytes = b"k") -> None:
        self.tp, self.offset, self.key = tp, offset, key
        self.fetched = False
        self.commits: list[dict[TopicPartition, int]] = []
        # What a bot's runtime asks of its group's commits (consumers.positions): one, at the
        # record, so it starts there.
        self._coordinator = SimpleNamespace(fetch_committed_offsets=self._committed)

    async def _committed(self, partitions: list[TopicPartition]
                         ) -> dict[TopicPartition, OffsetAndMetadata]:
        return {self.tp: OffsetAndMetadata(self.offset, "")} if self.tp in partitions else {}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {self.tp.partition} if topic == self.tp.topic else set()

    async def beginning_offsets(self, partitions: list[TopicPartition]
                                ) -> dict[TopicPartition, int]:
        return {tp: self.offset for tp in partitions}  # the record is the first kept

    def subscribe(self, *args: Any, **kwargs: Any) -> None:
        return None

    async def start(self) -> None:
        return None

    def assignment(self) -> set[TopicPartition]:
        return {self.tp}

    def paused(self) -> set[TopicPartition]:
        return set()

    def last_poll_timestamp(self, tp: TopicPartition) -> None:
        return None

    def highwater(self, tp: TopicPartition) -> None:
        return None

    async def position(self, tp: TopicPartition) -> int:
        return self.offset

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, Any]:
        await asyncio.sleep(timeout_ms / 1000)
        if self.fetched:
            return {}
        self.fetched = True
        return {self.tp: [SimpleNamespace(topic=self.tp.topic, partition=self.tp.partition,
                                          offset=self.offset, key=self.key, value=b"{}",
                                          headers=(), timestamp=0)]}

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        self.commits.append({tp: o.offset for tp, o in offsets.items()})


def fetched(offsets: range) -> dict[TopicPartition, list[Any]]:
    """What a fetch of TP answers: a record at each of `offsets`."""
    return {TP: [SimpleNamespace(topic=TP.topic, partition=TP.partition, offset=n,
                                 key=f"k{n}".encode(), value=b"v", headers=(), timestamp=0)
                 for n in offsets]}


class PartitionLog(Uncommitted):
    """aiokafka's consumer as the runtime's loop uses it, over one partition of `records`
    records: fetches from its position unless paused, seek moves it. committed() answers
    `committed`; an exception is raised instead; an Event is waited for, as aiokafka waits
    for a coordinator while Kafka is away."""

    def __init__(self, records: int, committed: Any = None) -> None:
        self.records = records
        self.at = 0
        self.assigned: set[TopicPartition] = set()
        self.held: set[TopicPartition] = set()
        self.seeks: list[int] = []
        self.committed_answer = committed
        self.asked = 0

    def subscribe(self, topics: list[str], listener: _CommitOnRevoke) -> None:
        self.listener = listener

    async def start(self) -> None:
        self.coordinating = asyncio.create_task(self._join())

    async def _join(self) -> None:
        """As aiokafka's coordinator task: the listener runs once fetching may begin."""
        await self.listener.on_partitions_revoked([])
        self.assigned = {TP}
        await self.listener.on_partitions_assigned(sorted(self.assigned))

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    async def position(self, tp: TopicPartition) -> int:
        return self.at

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, Any]:
        if TP not in self.assigned or TP in self.held or self.at >= self.records:
            await asyncio.sleep(0.005)
            return {}
        batch = fetched(range(self.at, self.records))
        self.at = self.records
        return batch

    def pause(self, *partitions: TopicPartition) -> None:
        self.held |= set(partitions)

    def paused(self) -> set[TopicPartition]:
        return self.held & self.assigned

    def last_poll_timestamp(self, tp: TopicPartition) -> int:
        return int(time.time() * 1000)  # Kafka answers every fetch

    def highwater(self, tp: TopicPartition) -> int:
        return self.records

    def resume(self, *partitions: TopicPartition) -> None:
        self.held -= set(partitions)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append(offset)
        self.at = offset

    async def committed(self, tp: TopicPartition) -> int | None:
        self.asked += 1
        answer = self.committed_answer
        if isinstance(answer, asyncio.Event):
            await answer.wait()
            return None
        if isinstance(answer, BaseException):
            raise answer
        return cast(int | None, answer)

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        return None


def runtime_over(consumer: PartitionLog, monkeypatch: pytest.MonkeyPatch,
                 handler: Handler) -> WorkerRuntime:
    """A runtime whose run() consumes from `consumer`, retrying getting ready at once."""
    async def stop(consumer: Any) -> None:
        return None

    monkeypatch.setattr(runtime_module, "AIOKafkaConsumer", lambda **given: consumer)
    monkeypatch.setattr(runtime_module, "stop_consumer", stop)
    monkeypatch.setattr(assignment, "READY_RETRY_S", 0.01)
    return WorkerRuntime(name="test", kafka="unused:9092", topics=[TP.topic], handler=handler,
                         commit_interval_s=0.01,
                         producer=KeepingProducer())  # type: ignore[arg-type]


class Group(Uncommitted):
    """aiokafka's consumer as far as readiness looks at it: the assignment, paused partitions
    and when a fetch of each was last answered (aiokafka's last_poll_timestamp, wall clock in
    ms: a fetch answers every half second, records or not, while Kafka is there)."""

    def __init__(self) -> None:
        self.assigned: set[TopicPartition] = set()
        self.paused_partitions: set[TopicPartition] = set()
        self.answered: dict[TopicPartition, int] = {}
        self.commit_error: Exception | None = None
        self.listener: _CommitOnRevoke | None = None
        self.kafka_away = False  # for what a member with no partition asks
        self.leaders_away: set[TopicPartition] = set()  # their broker down, the others up
        self.asked = 0

    def subscribe(self, topics: list[str], listener: _CommitOnRevoke) -> None:
        self.listener = listener

    async def start(self) -> None:
        return None

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def paused(self) -> set[TopicPartition]:
        return self.paused_partitions & self.assigned

    def last_poll_timestamp(self, tp: TopicPartition) -> int | None:
        assert tp in self.assigned, "aiokafka asserts it"
        return self.answered.get(tp)

    def highwater(self, tp: TopicPartition) -> None:
        return None

    def answer(self) -> None:
        """Kafka answers a fetch of every partition assigned and not paused."""
        for tp in self.assigned - self.paused_partitions:
            self.answered[tp] = int(time.time() * 1000)

    async def position(self, tp: TopicPartition) -> int:
        return 0

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0, 1}

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """As aiokafka's: asked until its request timeout (minutes) while Kafka, or the leader
        of one of `partitions`, is away."""
        assert {tp.partition for tp in partitions} <= self.partitions_for_topic(TP.topic)
        self.asked += 1
        if self.kafka_away or self.leaders_away & set(partitions):
            await asyncio.sleep(3600)
        return dict.fromkeys(partitions, 0)

    async def getmany(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, Any]:
        await asyncio.sleep(timeout_ms / 1000)
        return {}

    def pause(self, *partitions: TopicPartition) -> None:
        self.paused_partitions |= set(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.paused_partitions -= set(partitions)

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        if self.commit_error is not None:
            raise self.commit_error

    async def assign(self, partitions: set[TopicPartition]) -> None:
        """A rebalance: what was assigned is revoked, then `partitions` are."""
        assert self.listener is not None
        await self.listener.on_partitions_revoked(sorted(self.assigned))
        self.assigned = set()
        self.assigned = set(partitions)
        await self.listener.on_partitions_assigned(sorted(partitions))
