"""Partitions coming and going (WorkerRuntime's part): one newly assigned is got ready before
any of its records starts (its position, where a bot's starts without a commit, the
`on_assigned` hooks, and read again from its committed offset after a fetch across a
rebalance), retried while Kafka is away; one taken away is finished and committed first, as
is everything at a stop."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError

from consumers import commits
from consumers.positions import StartPositions
from consumers.skips import Skips
from consumers.worker_metrics import PARTITIONS, REBALANCES
from switchboard.futures import first_of, retrieve
from switchboard.logs import get_logger

if TYPE_CHECKING:  # the listener is the runtime's
    from consumers.runtime import WorkerRuntime

log = get_logger("consumers.runtime")  # the worker's lines, under the logger they always had

# Getting new partitions ready (their hooks, the committed offset to read from) failed, Kafka
# away say: tried again after this, doubling up to the cap, for as long as it takes.
READY_RETRY_S = 1.0
READY_RETRY_MAX_S = 30.0
# Joining the group taking longer than this is said (once): it takes for ever while the
# group's coordinator does not answer.
JOIN_SAID_AFTER_S = 30.0


class _CommitOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runtime: WorkerRuntime) -> None:
        self.runtime = runtime

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # aiokafka awaits this before giving partitions away: finish and commit first.
        if revoked:  # aiokafka calls it with none before the first join too
            REBALANCES.labels(self.runtime.name, "revoked").inc()
        PARTITIONS.labels(self.runtime.name).set(0)
        self.runtime.rebalancing(True)
        await self.runtime.release(set(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        # The runtime's hooks for them run from its consuming loop (WorkerRuntime._prepare),
        # not here: aiokafka already fetches the new partitions while this runs (their
        # records would start before the hooks are done), and does not heartbeat until it
        # returns (a hook waiting out a Kafka outage would lose the group).
        REBALANCES.labels(self.runtime.name, "assigned").inc()  # also none: a rebalance
        PARTITIONS.labels(self.runtime.name).set(len(assigned))
        self.runtime.rebalancing(False)


class Assignment:
    """WorkerRuntime's partitions assigned and taken away; the state it reads and keeps is the
    runtime's."""

    name: str
    group_id: str
    ready: asyncio.Event
    on_assigned: list[Callable[[list[TopicPartition]], Awaitable[None]]]
    _consumer: AIOKafkaConsumer | None
    _starts: StartPositions | None
    _skips: Skips
    _stopping: asyncio.Event
    _winding_down: asyncio.Event
    _generation: int
    _prepared: set[TopicPartition]
    _reposition: dict[TopicPartition, int]
    _unprepared_by: str | None
    _tasks: set[asyncio.Task[None]]
    _committing: asyncio.Task[None] | None
    _failure: Exception | None
    _rebalance_timeout_s: float
    _fetched: dict[TopicPartition, int]
    _committed: dict[TopicPartition, int]
    _in_flight: dict[TopicPartition, set[int]]

    if TYPE_CHECKING:
        def _seek(self, consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> None: ...

        async def _poll_paused_while(self, consumer: AIOKafkaConsumer,
                                     waiting: asyncio.Future[Any],
                                     give_way: Callable[[], bool], *,
                                     timeout_s: float | None = None) -> None: ...

        async def _commit_done(self, consumer: AIOKafkaConsumer,
                               only: set[TopicPartition] | None = None) -> None: ...

        def fail(self, exc: Exception) -> None: ...

    async def _join(self, consumer: AIOKafkaConsumer) -> bool:
        """Start the consumer, which joins the group: True once it has, False when the worker
        was stopped first. aiokafka's start waits for the group's first assignment: rightly
        until the other members have finished what they started (up to the rebalance
        timeout), and for ever while the group's coordinator does not answer (its broker
        down). A SIGTERM meanwhile went unheard until a SIGKILL, and nothing said why."""
        starting = asyncio.ensure_future(consumer.start())
        given_up = False
        try:
            if not (await first_of(starting, self._stopping, timeout_s=JOIN_SAID_AFTER_S)
                    or self._stopping.is_set()):
                log.warning("joining the consumer group is taking long; still trying (is the "
                            "group's coordinator reachable?)", worker=self.name,
                            group=self.group_id, waited_s=JOIN_SAID_AFTER_S)
                await first_of(starting, self._stopping)
        finally:
            if not starting.done():  # a stop, or our own cancellation (Ctrl-C)
                given_up = True
                starting.cancel()
                await asyncio.wait({starting})  # its own clean-up, before the consumer's stop
        if given_up:
            starting.add_done_callback(retrieve)  # what it raised as it was given up: moot
            return False
        starting.result()  # what it failed with (Kafka unreachable) stops the worker
        return True

    async def _get_ready(self, consumer: AIOKafkaConsumer) -> None:
        """Ready once every assigned partition has its position (resolved now, not
        lazily). A rebalance meanwhile (another member starting) may take a partition away:
        aiokafka then raises IllegalStateError for it, and the next turn asks the new
        assignment. aiokafka asks for a position until Kafka answers, for ever while it is
        away: given up on a stop, or after COMMIT_TIMEOUT_S (consumers.commits), so the loop
        goes on polling (the group keeps this member) and the next turn asks again."""
        positions = asyncio.ensure_future(self._positions(consumer))
        try:
            await first_of(positions, self._stopping, timeout_s=commits.COMMIT_TIMEOUT_S)
        finally:
            if not positions.done():  # a stop, no answer in time, or our own cancellation
                positions.cancel()
                positions.add_done_callback(retrieve)
        if (not positions.done() or positions.cancelled()
                or isinstance(positions.exception(), IllegalStateError)):
            return
        positions.result()  # anything else aiokafka raised stops the worker, as before
        self.ready.set()

    @staticmethod
    async def _positions(consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            await consumer.position(tp)

    async def _prepare(self, consumer: AIOKafkaConsumer) -> None:
        """Get the partitions assigned since the last time ready: their hooks run, and those
        a fetch across a rebalance moved are read again from their committed offset. Until
        then none of their records starts. A failure (Kafka away) is logged and tried again
        until it passes, or the worker stops; meanwhile the consumer polls, its partitions
        paused, so it stays in its group and commits what is done."""
        delay_s = READY_RETRY_S
        while not self._stopping.is_set():
            generation, assigned = self._generation, consumer.assignment()
            attempt = asyncio.ensure_future(self._prepare_once(consumer, assigned))
            try:
                await self._poll_paused_while(consumer, attempt, self._stopping.is_set)
            finally:
                if not attempt.done():  # a stop, or our own cancellation: not waited for
                    attempt.cancel()
                    attempt.add_done_callback(retrieve)
            if not attempt.done() or attempt.cancelled():
                return
            if (exc := attempt.exception()) is None:
                if self._generation == generation:  # none taken away and given again since
                    self._prepared |= assigned
                    self._unprepared_by = None
                return  # the loop calls again for any assigned meanwhile
            self._unprepared_by = type(exc).__name__
            log.warning("getting new partitions ready failed; retrying", worker=self.name,
                        error=repr(exc) if str(exc) else type(exc).__name__,
                        retry_in_s=delay_s)
            pause = asyncio.ensure_future(self._stopping.wait())
            try:
                await self._poll_paused_while(consumer, pause, self._stopping.is_set,
                                              timeout_s=delay_s)
            finally:
                pause.cancel()
            delay_s = min(delay_s * 2, READY_RETRY_MAX_S)

    async def _prepare_once(self, consumer: AIOKafkaConsumer,
                            assigned: set[TopicPartition]) -> None:
        new = assigned - self._prepared
        if new and self._starts is not None:
            resumed = await self._starts.place(consumer, new, timeout_s=commits.COMMIT_TIMEOUT_S)
            for tp, offset in resumed.items():
                self._skips.at(tp, offset)
        if new:
            for hook in self.on_assigned:
                await hook(sorted(new))
        for tp in list(self._reposition):
            # Taken first: one a fetch moves again meanwhile is put back, for the next turn.
            first_fetched = self._reposition.pop(tp)
            if tp not in consumer.assignment():
                continue  # given again, aiokafka reads it from the committed offset itself
            try:
                # aiokafka asks until a coordinator answers: for ever while Kafka is away.
                async with asyncio.timeout(commits.COMMIT_TIMEOUT_S):
                    committed = await consumer.committed(tp)
            except BaseException:
                self._reposition.setdefault(tp, first_fetched)
                raise
            if tp in consumer.assignment():  # not taken away meanwhile
                self._seek(consumer, tp, first_fetched if committed is None else committed)

    async def release(self, partitions: set[TopicPartition]) -> None:
        """Finish and commit work of partitions we are about to lose (rebalance)."""
        self._generation += 1  # first: no record of theirs may start from now on
        self._prepared -= partitions  # given again, they are got ready again
        self._winding_down.set()
        try:
            if self._consumer is not None:
                await self.drain(self._consumer, partitions)
        finally:
            if not self._stopping.is_set():
                self._winding_down.clear()

    async def drain(self, consumer: AIOKafkaConsumer,
                    partitions: set[TopicPartition] | None = None) -> None:
        """Wait for the work in flight, then commit it (on stop and before a rebalance)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        if self._committing is not None:
            await self._committing  # never raises: failures are logged
        if self._failure is None:
            await self._commit_done(consumer, partitions)
        await self._skips.forget(consumer, partitions or consumer.assignment())
        for tp in partitions or set(self._fetched):
            self._fetched.pop(tp, None)
            self._committed.pop(tp, None)
            self._in_flight.pop(tp, None)  # records given back: their next owner has them

    async def finish_after(self, exc: Exception) -> None:
        """The consuming loop failed with `exc` (Kafka refused a fetch: an authorization
        error): what started gets what a stop gives it, committing nothing (it comes back),
        before the consumer leaves and the producer stops. Stopped under it, a send could
        not publish its result and was outcome_unknown after the restart. Past the rebalance
        timeout, what a rebalance gives it too, what is left is cancelled: the worker exits."""
        self.fail(exc)  # none starts, none is committed; handlers wind down as at a stop
        if not (tasks := set(self._tasks)):
            return
        log.warning("worker failed; waiting for the records in flight before it stops "
                    "(none is committed)", worker=self.name, in_flight=len(tasks),
                    error_type=type(exc).__name__)
        _, unfinished = await asyncio.wait(tasks, timeout=self._rebalance_timeout_s)
        if unfinished:
            log.warning("records in flight still unfinished; cancelled (handled again at the "
                        "next start)", worker=self.name, in_flight=len(unfinished),
                        waited_s=self._rebalance_timeout_s)
            for task in unfinished:
                task.cancel()
            await asyncio.wait(unfinished)
