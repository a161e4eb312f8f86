"""Records started (WorkerRuntime's part): each behind the previous one of its key, within
`max_concurrency` slots and `max_in_flight` records out (waiting for room, the consumer polls
paused and commits); a record neither handled nor kept stops the worker short of it. Kept apart
from fetching and committing, which see only the offsets in flight and the tasks."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from consumers.handling import SLOT, GiveBack, Record, Slot
from consumers.skips import Skips
from switchboard.clients import KafkaConnection
from switchboard.failure_text import traceback_without_text
from switchboard.logs import get_logger
from switchboard.producer import PublishError

log = get_logger("consumers.runtime")  # the worker's lines, under the logger they always had


class Dispatch:
    """WorkerRuntime's records started; the state it reads and keeps is the runtime's."""

    name: str
    _connection: KafkaConnection
    _consumer: AIOKafkaConsumer | None
    _skips: Skips
    _stopping: asyncio.Event
    _winding_down: asyncio.Event
    _generation: int
    _failure: Exception | None
    _concurrency: asyncio.Semaphore
    _capacity: asyncio.Semaphore
    _tails: dict[tuple[str, int, bytes | None], asyncio.Task[None]]
    _tasks: set[asyncio.Task[None]]
    _in_flight: dict[TopicPartition, set[int]]
    _fetched: dict[TopicPartition, int]

    if TYPE_CHECKING:
        async def _poll_paused_while(self, consumer: AIOKafkaConsumer,
                                     waiting: asyncio.Future[Any],
                                     give_way: Callable[[], bool], *,
                                     timeout_s: float | None = None) -> None: ...

        async def _handle_one(self, record: Record) -> None: ...

        def _where(self, record: Record) -> dict[str, Any]: ...

        def fail(self, exc: Exception) -> None: ...

    async def _room(self) -> None:
        """A slot for one more record in flight. Waiting for it (every slot held by slow
        records: a backlog behind a provider's rate limit) may take minutes: meanwhile what
        is done is committed, and the consumer goes on polling with its partitions paused."""
        consumer = self._consumer
        if consumer is None or not self._capacity.locked():
            await self._capacity.acquire()
            return
        generation = self._generation
        room = asyncio.ensure_future(self._capacity.acquire())
        try:
            await self._poll_paused_while(
                consumer, room,
                lambda: self._stopping.is_set() or self._generation != generation)
            await room  # winding down: slots free up as records finish or give back
        except BaseException:  # cancelled, or the fetch failed: the slot is nobody's
            if not room.done():
                room.cancel()
            elif not room.cancelled():
                self._capacity.release()  # taken just as this went wrong
            raise

    async def _dispatch(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Start each record behind the previous one of its key; never wait for the batch."""
        generation = self._generation
        if self._failure is not None:
            return
        for tp, records in batch.items():
            for r in records:
                await self._room()  # backpressure: bounded records in flight
                if self._generation != generation:  # a rebalance began while we waited
                    self._capacity.release()
                    return
                if r is records[0] and self._consumer is not None:
                    self._skips.fetched(self._consumer, tp, records)
                record = Record(self._connection.plain_topic(r.topic), r.partition, r.offset, r.key,
                                r.value or b"", tuple(r.headers or ()))
                chain = (tp.topic, tp.partition, r.key)
                self._in_flight[tp].add(r.offset)
                self._fetched[tp] = r.offset + 1
                task = asyncio.create_task(self._run_in_order(record, tp, chain,
                                                              self._tails.get(chain)))
                self._tails[chain] = task
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _run_in_order(self, record: Record, tp: TopicPartition,
                            chain: tuple[str, int, bytes | None],
                            previous: asyncio.Task[None] | None) -> None:
        try:
            if previous is not None and not previous.done():
                await previous  # same key: strictly after it (it never raises: see below)
            slot = Slot(self._concurrency)
            SLOT.set(slot)  # this task's: given up while the record only waits
            await slot.take()
            try:
                if self._winding_down.is_set():
                    raise GiveBack  # not started yet: leave it (and its key's later records)
                await self._handle_one(record)
            finally:
                slot.give()
        except GiveBack:
            return  # stays in flight: commits stop below it, and it comes back
        except Exception as exc:  # noqa: BLE001 - a dead-letter publish, or MustNotSkip
            refused = _refusal(exc)
            log.error("record neither handled nor kept: stopping without committing it; it is "
                      "handled again once the worker restarts", worker=self.name,
                      error_type=type(exc).__name__, exception=traceback_without_text(exc),
                      # Kafka's words (no record's) say why it took nothing: the fix is there.
                      **({"error": repr(refused)} if refused is not None else {}),
                      **self._where(record))
            self.fail(exc)  # stop without committing past this record: it comes back
            return
        finally:
            self._capacity.release()
            if self._tails.get(chain) is asyncio.current_task():
                del self._tails[chain]
        self._in_flight[tp].discard(record.offset)


def _refusal(exc: BaseException) -> PublishError | None:
    """The publish Kafka refused that `exc` is, or was raised from (a bot's MustNotSkip)."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, PublishError):
        cause = cause.__cause__
    return cause
