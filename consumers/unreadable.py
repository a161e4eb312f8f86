"""A record aiokafka cannot read in a worker's topics (WorkerRuntime's part): which one it is,
the readable records before it handled, and the worker stopped at it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from switchboard.logs import get_logger
from switchboard.records import Unreadable, find_unreadable

log = get_logger("consumers.runtime")  # the worker's lines, under the logger they always had


class UnreadableRecord(Exception):
    """A record aiokafka cannot read (a header key that is not UTF-8, which only a producer
    of another client library can write): it raises for every fetch that holds it, so no
    worker of the group gets past it until its offset is moved (README, *Troubleshooting*)."""

class UnreadableStop:
    """WorkerRuntime's stop at an unreadable record; the state it reads is the runtime's."""

    name: str
    group_id: str
    _subscribed: list[str]
    _generation: int
    _stopping: asyncio.Event
    _prepared: set[TopicPartition]
    _tasks: set[asyncio.Task[None]]
    _in_flight: dict[TopicPartition, set[int]]

    if TYPE_CHECKING:
        def stop_because(self, exc: Exception) -> None: ...

        async def _dispatch(self, batch: dict[TopicPartition, list[Any]]) -> None: ...

        async def _poll_paused_while(self, consumer: AIOKafkaConsumer,
                                     waiting: asyncio.Future[Any],
                                     give_way: Callable[[], bool], *,
                                     timeout_s: float | None = None) -> None: ...

    async def _stop_at_unreadable(self, consumer: AIOKafkaConsumer,
                                  exc: UnicodeDecodeError) -> None:
        """aiokafka raises for a whole fetch when it cannot parse one of its records, naming
        neither partition nor offset, and again at every fetch after. Say which record it is
        (the partition whose fetch raises, read one record at a time up to it), handle the
        readable records before it there, and stop, finishing and committing what started:
        the group then stands at that record, and moving it one past skips that record alone.
        Skipping it is left to the operator: aiokafka cannot read the records after it in its
        producer's batch either, and records of other partitions the failed fetch had taken
        are lost to this run (their position moved on without them): only a new run reads
        them again."""
        generation = self._generation
        where, unhandled = f"a partition of {', '.join(self._subscribed)}", ""
        fields: dict[str, Any] = {"topics": self._subscribed}
        found = await find_unreadable(consumer, sorted(consumer.assignment()))
        if found is not None:
            where = str(found)
            fields = {"topic": found.partition.topic, "partition": found.partition.partition,
                      "offset": found.offset}
            if (left := await self._handle_before(consumer, found, generation)) is not None:
                fields["unhandled_from"] = left
                unhandled = (f"; the readable records before it from offset {left} were not "
                             "handled (the worker stopped meanwhile): the group stands before "
                             "them, and the next start handles them")
        log.error("record cannot be read; stopping", worker=self.name, error=repr(exc),
                  **fields)
        self.stop_because(UnreadableRecord(
            f"aiokafka cannot read the record at {where} (a header key that is not UTF-8, "
            f"there or before it in its producer's batch: {exc}){unhandled}; no worker of the "
            f"group {self.group_id} gets past it: see Troubleshooting in the README"))

    async def _handle_before(self, consumer: AIOKafkaConsumer, found: Unreadable,
                             generation: int) -> int | None:
        """Handle the readable records before the unreadable one in its partition (read while
        looking for it; the failed fetch dropped them) as any record, retried, else
        dead-lettered, and wait for them before stopping, which would give back those not
        started. Meanwhile every partition is paused: past the records the failed fetch
        dropped, none may be handled or committed. The offset from which they are left
        unhandled (a stop meanwhile gives back those not started: the next start handles
        them), else None; a rebalance meanwhile hands them to the partition's next owner,
        which stops at the record too."""
        tp, before = found.partition, found.before
        if not before or self._generation != generation:
            return None
        if self._stopping.is_set() or tp not in consumer.assignment() or tp not in self._prepared:
            return int(before[0].offset)
        await self._dispatch({tp: before})
        if self._tasks:  # as drain() would wait for them, but polling: they may take minutes
            done = asyncio.ensure_future(asyncio.wait(set(self._tasks)))
            try:
                await self._poll_paused_while(consumer, done, lambda: False)
            finally:
                done.cancel()  # only the waiting (our own cancellation): drain waits again
        if self._generation != generation:
            return None
        given_back = [offset for offset in self._in_flight.get(tp, ()) if offset < found.offset]
        return min(given_back) if given_back else None
