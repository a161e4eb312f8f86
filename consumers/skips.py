"""Records a running worker never got: Kafka deleted them below its position.

A worker behind by more than its topic's retention.ms (a provider's rate limit holding the
sender back for days), or whose records an operator deletes (kafka-delete-records), fetches
from an offset Kafka no longer has: aiokafka's fetcher moves the position to the first record
kept (auto_offset_reset="earliest") and says so at INFO only, which deployments filter, and
the records between were never handled. consumers.positions says what a start lost; this
says what a run loses: the same warning, the same switchboard_worker_records_lost_total.

Each partition's next offset is known (one past the last record fetched, or where the
runtime or the group put it): a fetch beginning past it is the sign. Gaps are legitimate too
(transaction markers, records compaction removed), so only then is Kafka asked where the
partition's log begins, in the background; the records below it that were never handled are
the lost ones. One question per partition at a time, asked again for the gaps seen while it
was out; none while fetches follow on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from consumers import commits
from consumers.positions import said_lost
from switchboard.futures import retrieve
from switchboard.logs import get_logger

log = get_logger("consumers.runtime")  # the worker's lines, under the logger they always had


class Skips:
    """What a worker's fetches skipped, per partition; `name` is the worker's."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._next: dict[TopicPartition, int] = {}
        # Gaps [expected, fetched) waiting for Kafka's answer, per partition asked about.
        self._gaps: dict[TopicPartition, list[tuple[int, int]]] = {}
        self._asking: set[asyncio.Task[None]] = set()

    def at(self, tp: TopicPartition, offset: int) -> None:
        """The partition's position was put at `offset` (a seek, the group's commit)."""
        self._next[tp] = offset

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Given away: its next owner reads it from the group's commit."""
        for tp in partitions:
            self._next.pop(tp, None)

    def fetched(self, consumer: AIOKafkaConsumer, tp: TopicPartition, records: list[Any]
                ) -> None:
        """Note the records of `tp` a fetch gave, once the first of them starts: one beginning
        past the partition's next offset is asked about. A fetch begins at one position, so a
        gap can only be before its first record. Not before it starts: records a rebalance
        leaves to the partition's next owner keep the group's commit below the gap, and that
        owner says them lost where it resumes (consumers.positions)."""
        if not records:
            return
        expected = self._next.get(tp)
        self._next[tp] = records[-1].offset + 1
        first = records[0].offset
        if expected is None or first <= expected:
            return
        if (gaps := self._gaps.get(tp)) is not None:  # the next question asks about it
            gaps.append((expected, first))
            return
        self._gaps[tp] = [(expected, first)]
        task = asyncio.create_task(self._ask(consumer, tp))
        self._asking.add(task)
        task.add_done_callback(self._asking.discard)

    async def _ask(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> None:
        """Ask about the gaps of `tp` noted so far, then again about those noted meanwhile: an
        answer to a question sent before a gap was seen may tell where the log began before
        the deletion that made it: its records would pass for a marker's gap, not lost."""
        try:
            while gaps := self._gaps.get(tp):
                self._gaps[tp] = []  # noted from now on: the next question's
                await self._ask_once(consumer, tp, gaps)
        finally:
            self._gaps.pop(tp, None)

    async def _ask_once(self, consumer: AIOKafkaConsumer, tp: TopicPartition,
                        gaps: list[tuple[int, int]]) -> None:
        try:
            # aiokafka asks until its request timeout (minutes) while Kafka is away.
            async with asyncio.timeout(commits.COMMIT_TIMEOUT_S):
                kept = (await consumer.beginning_offsets([tp]))[tp]
        except (KafkaError, TimeoutError, KeyError) as exc:
            log.warning("records skipped by the consumer, which could not ask Kafka whether it "
                        "deleted them (retention): they may be lost", worker=self.name,
                        topic=tp.topic, partition=tp.partition,
                        skipped=",".join(f"{first}-{end - 1}" for first, end in gaps),
                        error=repr(exc) if str(exc) else type(exc).__name__)
            return
        # Below the first record kept and never fetched: deleted before they were handled.
        # Between it and the record fetched: no record (a transaction marker, compaction).
        said_lost(self.name, tp.topic, {tp: [(first, min(kept, end)) for first, end in gaps
                                             if min(kept, end) > first]})

    async def settle(self) -> None:
        """Wait for the questions asked (each bounded): a worker stopping says what it lost."""
        if self._asking:
            await asyncio.wait(set(self._asking))

    def cancel(self) -> None:
        for task in self._asking:
            task.cancel()
            task.add_done_callback(retrieve)
