"""Where a worker resumes a partition it is given: one whose commit Kafka deleted the records
of (any worker), and, for one that starts at the end (start_from="latest": the bots), one its
group has no commit for.

aiokafka applies auto_offset_reset to every partition without a commit, not to a brand-new
group only: a partition added to the topic (kafka-topics.sh --alter --partitions), or one that
never had a record, was started at its end whenever a member took it on, skipping what was
written to it meanwhile (an end user's STOP, never answered). A member taking on such a
partition starts it instead at the first record written since the group began (for a
brand-new group: since this member started), and commits that position at once, so its next
owner, or the next start, resumes there and nothing written meanwhile is skipped.

Kafka keeps no time of a group's first commit: the group's commits carry it in their
metadata ("since=<epoch ms>"). A group whose commits carry none (an earlier version's) counts
from when its member started: records written before to a partition it never committed are
not answered, as before, rather than a week of them answered at once.

A partition whose commit lies below its first record (Kafka deleted the records in between:
retention, while the worker was down longer than the topic's retention.ms, or
kafka-delete-records) resumes at its first record, with a warning naming what was lost (and
switchboard_worker_records_lost_total), not at its end: aiokafka applies auto_offset_reset
there too, and "latest" skipped every record still kept (STOPs among them); with "earliest"
(the sender) it resumed at the first record kept saying nothing a deployment logs (aiokafka's
INFO line), and the commands deleted were never sent, unnoticed. The consumer runs with
"earliest" for the same case while it is running (consumers.skips says what it lost then);
partitions without a commit never reach it, as they are placed here first.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from consumers.worker_metrics import LOST
from switchboard.logs import get_logger

log = get_logger(__name__)

_SINCE = "since="


def since_of(metadata: str) -> int | None:
    """The group's start (epoch ms) a commit's metadata says, None if it says none."""
    if not metadata.startswith(_SINCE):
        return None
    try:
        return int(metadata[len(_SINCE):])
    except ValueError:
        return None


async def committed_with_metadata(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
                                  ) -> dict[TopicPartition, OffsetAndMetadata]:
    """The group's commits of `partitions` (those it has), metadata included: aiokafka's
    committed() gives the offset only, and asks once per partition."""
    answer: dict[TopicPartition, OffsetAndMetadata] = (
        await consumer._coordinator.fetch_committed_offsets(partitions))
    return answer


def said_lost(worker: str, topic: str, lost: dict[TopicPartition, list[tuple[int, int]]]
              ) -> None:
    """Say and count the records of `topic` Kafka deleted before the worker handled them: per
    partition, the ranges [first, end) of offsets lost (at a start, or while running)."""
    records = sum(end - first for ranges in lost.values() for first, end in ranges)
    if not records:
        return
    LOST.labels(worker).inc(records)
    log.warning("records deleted by Kafka (retention) before the group handled them: lost; "
                "resuming at the oldest record kept", worker=worker, topic=topic,
                records=records,
                lost={tp.partition: ",".join(f"{first}-{end - 1}" for first, end in ranges)
                      for tp, ranges in sorted(lost.items()) if ranges})


class StartPositions:
    """Where the group resumes each partition given to this member. With `latest` (the bots):
    since when (epoch ms) the group reads each topic, as its commits say it, else since this
    member started; every commit of the member carries it (`metadata`)."""

    def __init__(self, worker: str, started_ms: int | None = None, *,
                 latest: bool = True) -> None:
        self.worker = worker
        self.latest = latest
        self.started_ms = started_ms if started_ms is not None else int(time.time() * 1000)
        self._since: dict[str, int] = {}

    def metadata(self, topic: str) -> str:
        if not self.latest:
            return ""
        return f"{_SINCE}{self._since.get(topic, self.started_ms)}"

    async def place(self, consumer: AIOKafkaConsumer, taken: Iterable[TopicPartition], *,
                    timeout_s: float) -> dict[TopicPartition, int]:
        """Seek each of `taken` (newly assigned) the group has no commit for to where it
        starts (with `latest`), and each whose commit Kafka deleted the records of to its first
        record, and commit that. Where each of `taken` resumes, as far as the group says (its
        commit, or where it was placed), by partition. Raises if Kafka does not
        answer within `timeout_s` a question, or refuses the commit (a rebalance meanwhile):
        the caller tries again, when those the commit did not take still have none."""
        by_topic: dict[str, set[TopicPartition]] = defaultdict(set)
        for tp in taken:
            by_topic[tp.topic].add(tp)
        placed: dict[TopicPartition, int] = {}
        for topic, partitions in sorted(by_topic.items()):
            placed |= await self._place_topic(consumer, topic, partitions, timeout_s)
        return placed

    async def _place_topic(self, consumer: AIOKafkaConsumer, topic: str,
                           taken: set[TopicPartition], timeout_s: float
                           ) -> dict[TopicPartition, int]:
        # Every partition of the topic: the group's start is on those that have commits.
        every = taken | ({TopicPartition(topic, partition)
                          for partition in consumer.partitions_for_topic(topic) or ()}
                         if self.latest else set())
        # aiokafka asks until a coordinator answers: for ever while Kafka is away.
        async with asyncio.timeout(timeout_s):
            committed = await committed_with_metadata(consumer, sorted(every))
        said = [since for offset in committed.values()
                if (since := since_of(offset.metadata)) is not None]
        # The earliest: members that started apart, on a brand-new group, agree on it.
        since = min([self._since.get(topic, self.started_ms), *said])
        self._since[topic] = since
        # Without `latest`, aiokafka starts them at the first record kept: all of it is wanted.
        fresh = sorted(tp for tp in taken if tp not in committed) if self.latest else []
        starts: dict[TopicPartition, int] = {}
        if fresh:
            async with asyncio.timeout(timeout_s):
                found = await consumer.offsets_for_times({tp: since for tp in fresh})
            starts = {tp: found[tp].offset for tp in fresh if found.get(tp) is not None}
            if unfound := [tp for tp in fresh if tp not in starts]:  # nothing written since
                async with asyncio.timeout(timeout_s):
                    starts |= await consumer.end_offsets(unfound)
        lost = await self._deleted(consumer, {tp: offset.offset for tp, offset
                                              in committed.items() if tp in taken}, timeout_s)
        assigned = consumer.assignment()
        placed = {tp: offset for tp, offset in (starts | lost).items() if tp in assigned}
        for tp, offset in placed.items():
            consumer.seek(tp, offset)
        if placed:
            async with asyncio.timeout(timeout_s):
                await consumer.commit({tp: OffsetAndMetadata(offset, self.metadata(topic))
                                       for tp, offset in placed.items()})
        if starts := {tp: offset for tp, offset in starts.items() if tp in placed}:
            log.info("partitions without a commit start at the first record since the group "
                     "began", topic=topic, since_ms=since,
                     offsets={tp.partition: offset for tp, offset in starts.items()})
        said_lost(self.worker, topic, {tp: [(committed[tp].offset, offset)]
                                       for tp, offset in lost.items() if tp in placed})
        return {tp: offset.offset for tp, offset in committed.items()
                if tp in taken and tp in assigned} | placed

    @staticmethod
    async def _deleted(consumer: AIOKafkaConsumer, committed: dict[TopicPartition, int],
                       timeout_s: float) -> dict[TopicPartition, int]:
        """Of the partitions committed at `committed`, those whose first record Kafka keeps
        lies past it (the records between were deleted), with that first record."""
        if not committed:
            return {}
        async with asyncio.timeout(timeout_s):
            firsts: dict[TopicPartition, int] = await consumer.beginning_offsets(
                sorted(committed))
        return {tp: first for tp, first in firsts.items()
                if tp in committed and committed[tp] < first}
