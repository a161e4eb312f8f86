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
was out; none while fetches follow on. A question Kafka does not answer leaves the whole gap
possibly lost: said so, and counted apart (switchboard_worker_records_maybe_lost_total).

Lost records (and possibly lost ones) are said by the member whose commit passes them, as at
a start: one said here and left below the group's commit (the commit on revoke refused, the
worker stopped by a failure) would be said again by whoever resumes there, and one left to
the next owner while the group's commit passes them would be said by nobody. So they are said
once this member's commit passes them, and when it gives the partition away, by the group's
commit as Kafka then tells it: a commit that did not answer in time may have been taken or
not, and one refused may follow an attempt aiokafka retried that Kafka took. Only when Kafka
does not tell is a commit that did not answer taken as passing them (said here, and maybe by
the next owner too).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from consumers import commits
from consumers.positions import committed_with_metadata, said_lost
from consumers.worker_metrics import MAYBE_LOST
from switchboard.futures import retrieve
from switchboard.logs import get_logger

log = get_logger("consumers.runtime")  # the worker's lines, under the logger they always had

# [first, end) skipped, and why Kafka could not say whether it deleted them (None: it did).
_Range = tuple[int, int, str | None]


class _Asked:
    """The gaps of a partition this member holds, waiting for Kafka's answer; once it is
    given away, the offset it last committed it at."""

    __slots__ = ("gaps", "given")

    def __init__(self, gap: tuple[int, int]) -> None:
        self.gaps = [gap]
        self.given: int | None = None


class Skips:
    """What a worker's fetches skipped, per partition; `name` is the worker's."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._next: dict[TopicPartition, int] = {}
        # Gaps [expected, fetched) waiting for Kafka's answer, per partition asked about.
        self._gaps: dict[TopicPartition, _Asked] = {}
        self._asking: set[asyncio.Task[None]] = set()
        # This member's last commit of each partition it holds that Kafka took.
        self._committed: dict[TopicPartition, int] = {}
        # Its highest commit that did not answer in time: Kafka may have taken it.
        self._unanswered: dict[TopicPartition, int] = {}
        # Ranges [first, end) lost, said once a commit passes them; with the error that kept
        # Kafka from saying whether it deleted them, those that may be.
        self._unsaid: dict[TopicPartition, list[_Range]] = {}

    def at(self, tp: TopicPartition, offset: int) -> None:
        """The partition's position was put at `offset` (a seek, the group's commit)."""
        self._next[tp] = offset

    async def forget(self, consumer: AIOKafkaConsumer, partitions: Iterable[TopicPartition]
                     ) -> None:
        """Given away (or the worker stops): its next owner reads it from the group's commit,
        and says what was lost below it; what was lost below it is said here. Kafka is asked
        for that commit only for a partition with losses to judge by it."""
        partitions = set(partitions)
        group = await self._group_commits(consumer, sorted(
            tp for tp in partitions if tp in self._unsaid or tp in self._gaps))
        for tp in partitions:
            self._next.pop(tp, None)
            committed = self._committed.pop(tp, -1)
            unanswered = self._unanswered.pop(tp, -1)
            # Kafka's word; without it, a commit that did not answer may have been taken.
            passed = group.get(tp, max(committed, unanswered))
            if (unsaid := self._unsaid.pop(tp, None)) is not None:
                self._say(tp, unsaid, passed, keep=False)
            if (asked := self._gaps.pop(tp, None)) is not None:
                # The answer is judged by it: what it did not pass is the next owner's to say.
                # Gaps seen once the partition is given again are asked about anew.
                asked.given = passed

    @staticmethod
    async def _group_commits(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
                             ) -> dict[TopicPartition, int]:
        """The group's commit of each of `partitions` (-1 for none), as Kafka tells it, or {}
        when it does not answer in time. Asked on the coordinator's connection, after this
        member's commits: one still unanswered there is told as Kafka took it, or not."""
        if not partitions:
            return {}
        try:
            # aiokafka asks until a coordinator answers: for ever while Kafka is away.
            async with asyncio.timeout(commits.COMMIT_TIMEOUT_S):
                found = await committed_with_metadata(consumer, partitions)
        except (KafkaError, TimeoutError):
            return {}
        return {tp: found[tp].offset if tp in found else -1 for tp in partitions}

    def committed(self, tp: TopicPartition, offset: int) -> None:
        """This member committed `tp` at `offset`: the records lost below it are said."""
        self._committed[tp] = offset
        if tp in self._unsaid:
            self._say(tp, self._unsaid.pop(tp), offset, keep=True)

    def unanswered(self, tp: TopicPartition, offset: int) -> None:
        """A commit of `tp` at `offset` did not answer in time: Kafka may have taken it or
        not, which is told when the partition is given away (forget) or a later commit is
        taken."""
        self._unanswered[tp] = max(offset, self._unanswered.get(tp, -1))

    def _say(self, tp: TopicPartition, lost: list[_Range], committed: int, *,
             keep: bool) -> None:
        said_lost(self.name, tp.topic, {tp: [(first, end) for first, end, error in lost
                                             if end <= committed and error is None]})
        maybe = [(first, end, error) for first, end, error in lost
                 if end <= committed and error is not None]
        for error in dict.fromkeys(error for _, _, error in maybe):
            skipped = [(first, end) for first, end, said in maybe if said == error]
            MAYBE_LOST.labels(self.name).inc(sum(end - first for first, end in skipped))
            log.warning("records skipped by the consumer, which could not ask Kafka whether it "
                        "deleted them (retention): they may be lost", worker=self.name,
                        topic=tp.topic, partition=tp.partition,
                        skipped=",".join(f"{first}-{end - 1}" for first, end in skipped),
                        error=error)
        if keep and (rest := [(first, end, error) for first, end, error in lost
                              if end > committed]):
            self._unsaid.setdefault(tp, []).extend(rest)

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
        if expected is not None and first < expected:
            _read_again(self.name, tp, expected, first)
        if expected is None or first <= expected:
            return
        if (asked := self._gaps.get(tp)) is not None:  # the next question asks about it
            asked.gaps.append((expected, first))
            return
        self._gaps[tp] = asked = _Asked((expected, first))
        task = asyncio.create_task(self._ask(consumer, tp, asked))
        self._asking.add(task)
        task.add_done_callback(self._asking.discard)

    async def _ask(self, consumer: AIOKafkaConsumer, tp: TopicPartition, asked: _Asked
                   ) -> None:
        """Ask about the gaps of `tp` noted so far, then again about those noted meanwhile: an
        answer to a question sent before a gap was seen may tell where the log began before
        the deletion that made it: its records would pass for a marker's gap, not lost."""
        try:
            while gaps := asked.gaps:
                asked.gaps = []  # noted from now on: the next question's
                await self._ask_once(consumer, tp, asked, gaps)
        finally:
            if self._gaps.get(tp) is asked:
                del self._gaps[tp]

    async def _ask_once(self, consumer: AIOKafkaConsumer, tp: TopicPartition, asked: _Asked,
                        gaps: list[tuple[int, int]]) -> None:
        try:
            # aiokafka asks until its request timeout (minutes) while Kafka is away.
            async with asyncio.timeout(commits.COMMIT_TIMEOUT_S):
                kept = (await consumer.beginning_offsets([tp]))[tp]
        except (KafkaError, TimeoutError, KeyError) as exc:
            # All of them may be: said as the lost ones are, by the member passing them.
            error = repr(exc) if str(exc) else type(exc).__name__
            lost: list[_Range] = [(first, end, error) for first, end in gaps]
        else:
            # Below the first record kept and never fetched: deleted before they were handled.
            # Between it and the record fetched: no record (a transaction marker, compaction).
            lost = [(first, min(kept, end), None) for first, end in gaps
                    if min(kept, end) > first]
        if asked.given is not None:
            self._say(tp, lost, asked.given, keep=False)
        else:
            self._say(tp, lost, self._committed.get(tp, -1), keep=True)

    async def settle(self) -> None:
        """Wait for the questions asked (each bounded): a worker stopping says what it lost."""
        if self._asking:
            await asyncio.wait(set(self._asking))

    def cancel(self) -> None:
        for task in self._asking:
            task.cancel()
            task.add_done_callback(retrieve)


def _read_again(worker: str, tp: TopicPartition, position: int, first: int) -> None:
    """A fetch began below the partition's position, which no seek of the runtime put there:
    the position was past the partition's end, and aiokafka's fetcher moved it to the first
    record kept (auto_offset_reset="earliest"), saying so at INFO only. Kafka lost records the
    group had handled (an unclean leader election) or the partition is not the one committed
    (a topic deleted and created again, a cluster restored from a backup): the records from
    there are handled again, which only "earliest" does not skip any new one of."""
    log.warning("position past the partition's end (records the group handled lost by Kafka: "
                "an unclean leader election, a topic created again, a restored cluster): "
                "reading it again from its first record kept; its records may be handled "
                "twice", worker=worker, topic=tp.topic, partition=tp.partition,
                position=position, resumed_at=first)
