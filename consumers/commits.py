"""What a worker commits, and when (WorkerRuntime's part): per partition, the offset below
the oldest record still in flight, at most once per commit interval and in the background; a
commit that fails (a rebalance, Kafka away) is logged, throttled, and the records come back."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from consumers.positions import StartPositions
from switchboard.throttle import ThrottledLog

if TYPE_CHECKING:  # consumers.skips reads COMMIT_TIMEOUT_S here
    from consumers.skips import Skips

# aiokafka retries a commit for as long as it finds no coordinator (the broker away): a stop
# waiting on that would hang until Kafka is back. Past this the records are left uncommitted,
# and come back: at-least-once. Also how long the runtime waits for Kafka's other answers on
# where partitions are read from (positions, committed offsets): consumers.assignment reads it
# here, at each use, so there is one value (a test patches it here).
COMMIT_TIMEOUT_S = 5.0


class Commits:
    """WorkerRuntime's commits; the state it reads and keeps is the runtime's."""

    name: str
    commit_interval_s: float
    _starts: StartPositions | None
    _skips: Skips
    _fetched: dict[TopicPartition, int]
    _in_flight: dict[TopicPartition, set[int]]
    _committed: dict[TopicPartition, int]
    _commits_failing_since: float | None
    _outage_log: ThrottledLog
    _last_commit: float
    _committing: asyncio.Task[None] | None
    # aiokafka's request of a commit given up on (timed out) that Kafka has not answered yet.
    _commit_request: asyncio.Task[Any] | None = None

    def _maybe_commit(self, consumer: AIOKafkaConsumer) -> None:
        if (time.monotonic() - self._last_commit >= self.commit_interval_s
                and (self._committing is None or self._committing.done())
                # Not while one is still out: each would wait for the same silent broker, and
                # each fail once it answers (a paused broker: four in 30 s, then four errors).
                and (self._commit_request is None or self._commit_request.done())):
            # In the background: a commit is a round trip to the coordinator, and records
            # fetched meanwhile should not wait for it.
            self._committing = asyncio.create_task(self._commit_quietly(consumer))
            self._last_commit = time.monotonic()

    def _committable(self) -> dict[TopicPartition, OffsetAndMetadata]:
        """Per partition: everything below the oldest record still in flight is done."""
        offsets = {}
        for tp, fetched in self._fetched.items():
            pending = self._in_flight[tp]
            safe = min(pending) if pending else fetched
            if safe > self._committed.get(tp, -1):
                offsets[tp] = OffsetAndMetadata(
                    safe, "" if self._starts is None else self._starts.metadata(tp.topic))
        return offsets

    async def _commit_done(self, consumer: AIOKafkaConsumer,
                           only: set[TopicPartition] | None = None) -> None:
        assigned = consumer.assignment()  # aiokafka refuses the whole commit otherwise
        offsets = {tp: o for tp, o in self._committable().items()
                   if tp in assigned and (only is None or tp in only)}
        if not offsets:
            if only is None:
                self._commits_failing_since = None  # none is waiting
            return
        try:
            try:
                async with asyncio.timeout(COMMIT_TIMEOUT_S):
                    await consumer.commit(offsets)
            except (TimeoutError, asyncio.CancelledError):
                self._follow_commit_request(consumer)
                raise
        except (KafkaError, TimeoutError) as exc:  # e.g. a rebalance began, or the broker is
            # away: the records will come back
            if isinstance(exc, TimeoutError):  # Kafka may have taken it (consumers.skips)
                for tp, offset in offsets.items():
                    self._skips.unanswered(tp, offset.offset)
            if self._commits_failing_since is None:
                self._commits_failing_since = time.time()
            self._commit_failed(exc, repr(exc) if isinstance(exc, KafkaError)
                                else f"no answer within {COMMIT_TIMEOUT_S}s")
            return
        self._commits_failing_since = None
        for tp, offset in offsets.items():
            self._committed[tp] = offset.offset
            self._skips.committed(tp, offset.offset)

    def _follow_commit_request(self, consumer: AIOKafkaConsumer) -> None:
        """A commit given up on (timed out, or cancelled by the stop) leaves its request out:
        aiokafka shields it, and drops its own interest in it as the commit is cancelled
        (asyncio.shield in Python 3.11), so its failure once Kafka answers (the member gone
        from the group meanwhile: UnknownMemberIdError) was logged by asyncio as 'Task
        exception was never retrieved', with a traceback. Retrieved here, and said as the
        commit failure it is."""
        for request in _commit_requests(consumer):
            if request is not self._commit_request:  # not followed yet
                request.add_done_callback(self._commit_request_ended)
                self._commit_request = request

    def _commit_request_ended(self, request: asyncio.Task[Any]) -> None:
        if request.cancelled() or (exc := request.exception()) is None:
            return  # taken late: the next commit commits as far again, or further
        # INFO: the commit was said failed (no answer) when it was given up on.
        self._outage_log(logging.INFO, "commit failed once kafka answered",
                         {"worker": self.name, "error_type": type(exc).__name__},
                         error=repr(exc))

    async def _commit_quietly(self, consumer: AIOKafkaConsumer) -> None:
        try:
            await self._commit_done(consumer)
        except Exception as exc:  # noqa: BLE001 - the next interval commits again
            self._commit_failed(exc, repr(exc))

    def _commit_failed(self, exc: Exception, error: str) -> None:
        # Throttled as retries are: with Kafka away, each worker fails a commit every
        # COMMIT_TIMEOUT_S (more often where Kafka refuses at once), for as long as it lasts.
        self._outage_log(logging.WARNING, "commit failed",
                         {"worker": self.name, "error_type": type(exc).__name__}, error=error)


def _commit_requests(consumer: AIOKafkaConsumer) -> list[asyncio.Task[Any]]:
    """The requests of `consumer`'s commits still out: the tasks aiokafka's commit_offsets
    shields (asyncio.shield(self._do_commit_offsets(...)), aiokafka 0.14), found by their
    coroutine, aiokafka giving no handle on them (test_commit_requests pins the names)."""
    coordinator = getattr(consumer, "_coordinator", None)
    found = []
    for task in asyncio.all_tasks():
        coroutine = task.get_coro()
        if (not task.done() and coordinator is not None
                and getattr(coroutine, "__qualname__", "") == _COMMIT_REQUEST
                and getattr(getattr(coroutine, "cr_frame", None), "f_locals", {}).get("self")
                is coordinator):
            found.append(task)
    return found


_COMMIT_REQUEST = "GroupCoordinator._do_commit_offsets"
