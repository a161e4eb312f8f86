"""Fetching (WorkerRuntime's part): the next batch of records, none of which starts when
partitions were taken away while it was answered or before their hooks are done (read again
from where they belong); and polling with every partition paused while the worker waits, so
the group does not take it for stuck. Kept apart from the consuming loop, which only asks for
the next batch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from consumers.skips import Skips
from switchboard.futures import first_of


class Fetching:
    """WorkerRuntime's fetches; the state it reads and keeps is the runtime's."""

    max_batch: int
    commit_interval_s: float
    _skips: Skips
    _stopping: asyncio.Event
    _generation: int
    _prepared: set[TopicPartition]
    _reposition: dict[TopicPartition, int]

    if TYPE_CHECKING:
        async def _stop_at_unreadable(self, consumer: AIOKafkaConsumer,
                                      exc: UnicodeDecodeError) -> None: ...

        def _maybe_commit(self, consumer: AIOKafkaConsumer) -> None: ...

    async def _next_batch(self, consumer: AIOKafkaConsumer
                          ) -> dict[TopicPartition, list[Any]]:
        generation = self._generation
        fetch = asyncio.ensure_future(consumer.getmany(timeout_ms=100,
                                                       max_records=self.max_batch))
        if not await first_of(fetch, self._stopping):
            fetch.cancel()
            return {}
        try:
            result: dict[TopicPartition, list[Any]] = fetch.result()
        except UnicodeDecodeError as exc:  # aiokafka parsing a header key
            await self._stop_at_unreadable(consumer, exc)
            return {}
        if self._generation != generation:
            # Partitions were taken away while this fetch was answered, and release() may be
            # over already: the records may be ones given up (their next owner starts from the
            # offset committed) or, the fetch having waited for it, the new assignment's.
            # None starts now. A partition assigned again is read from its committed offset,
            # as a new owner would: not from these records, which may lie past records
            # release() gave back uncommitted. _prepare() does that before any record of
            # theirs starts, as the committed offset may take a while (Kafka away).
            assigned = consumer.assignment()
            for tp, records in result.items():
                if tp in assigned and records:
                    self._reposition.setdefault(tp, records[0].offset)
            return {}
        for tp in [tp for tp in result if tp not in self._prepared]:
            # Fetched before the partition's hooks were done (aiokafka fetches a new
            # assignment at once): read again once they are.
            if records := result.pop(tp):
                self._seek(consumer, tp, records[0].offset)
        return result

    def _seek(self, consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> None:
        """Fetch `tp` from `offset` next: a later fetch beginning past it skipped records."""
        consumer.seek(tp, offset)
        self._skips.at(tp, offset)

    async def _poll_paused_while(self, consumer: AIOKafkaConsumer, waiting: asyncio.Future[Any],
                                 give_way: Callable[[], bool], *,
                                 timeout_s: float | None = None) -> None:
        """Until `waiting` is done, `give_way()` is true or `timeout_s` passed: commit what is
        done and poll with every partition paused. A consumer that does not poll for
        max.poll.interval (5 minutes) is taken for stuck and leaves its group, which hands its
        partitions, records in flight included, to another member from the last commit."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        paused: set[TopicPartition] = set()
        try:
            while not (await asyncio.wait({waiting}, timeout=self.commit_interval_s))[0]:
                if give_way() or (deadline is not None and time.monotonic() >= deadline):
                    return
                self._maybe_commit(consumer)
                if assigned := consumer.assignment() - paused:  # also any assigned meanwhile
                    consumer.pause(*assigned)
                    paused |= assigned
                for tp, records in (await self._next_batch(consumer)).items():
                    self._seek(consumer, tp, records[0].offset)  # none expected: all paused
        finally:
            if paused:  # one assigned anew comes unpaused; one taken away cannot be resumed
                consumer.resume(*(paused & consumer.assignment()))
