"""What a worker commits, and when (WorkerRuntime's part): per partition, the offset below
the oldest record still in flight, at most once per commit interval and in the background; a
commit that fails (a rebalance, Kafka away, Kafka refusing it) is logged, throttled, and the
records come back; one Kafka does not answer in time is left out, not cancelled, and no other
starts until it ends, unless Kafka has no topic of it any more (deleted), which aiokafka would
retry for ever. What failed is kept for /readyz (consumers.kafka_watch): no answer, or Kafka's
refusal by its name."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import (
    BrokerResponseError,
    CommitFailedError,
    IllegalGenerationError,
    IllegalStateError,
    KafkaError,
    RebalanceInProgressError,
    UnknownMemberIdError,
    UnknownTopicOrPartitionError,
)
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

# A commit refused because the group moved on (a rebalance): aiokafka raises CommitFailedError
# for the next three, and IllegalStateError for a partition taken away before it was sent.
# Normal during a rebalance, and Kafka answered: neither Kafka away nor a refusal to fix.
REBALANCE_ANSWERS: tuple[type[Exception], ...] = (
    CommitFailedError, RebalanceInProgressError, IllegalGenerationError, UnknownMemberIdError,
    IllegalStateError)

# Answers aiokafka takes for passing (retriable) and retries a commit on without end, every
# retry_backoff_ms, though no retry cures them: a topic deleted under the worker
# (UNKNOWN_TOPIC_OR_PARTITION) is gone until someone creates it again. Told by what Kafka's
# metadata says (the topic missing), as aiokafka raises nothing: the commit only hangs.
REFUSED_FOR_GOOD: tuple[type[Exception], ...] = (UnknownTopicOrPartitionError,)


class Commits:
    """WorkerRuntime's commits; the state it reads and keeps is the runtime's."""

    name: str
    commit_interval_s: float
    _starts: StartPositions | None
    _skips: Skips
    _fetched: dict[TopicPartition, int]
    _in_flight: dict[TopicPartition, set[int]]
    _committed: dict[TopicPartition, int]
    _commits_failing_since: float | None  # wall clock: since the first of the failures in a row
    # Kafka's refusal of the last commit, by its error class (GroupAuthorizationFailedError: an
    # ACL revoked); None where it did not answer. /readyz says which.
    _commits_refused_by: str | None = None
    _outage_log: ThrottledLog
    _last_commit: float
    _committing: asyncio.Task[None] | None
    # The last commit sent (consumer.commit, a task of ours): one given up on (no answer
    # within COMMIT_TIMEOUT_S) is left to run, not cancelled, until Kafka answers it, unless
    # it names a topic Kafka no longer has (_give_up_on_gone).
    _commit_request: asyncio.Task[None] | None = None
    _commit_topics: frozenset[str] = frozenset()  # those it names
    _commit_left_out = False  # whether it is given up on: no one waits for its answer

    def _maybe_commit(self, consumer: AIOKafkaConsumer) -> None:
        if (time.monotonic() - self._last_commit < self.commit_interval_s
                or (self._committing is not None and not self._committing.done())):
            return
        if (refusal := self._give_up_on_gone(consumer)) is not None:
            # The one out, given up on, names a topic deleted since: what Kafka answers it.
            self._note_commit_failure(refusal)
            self._commit_failed(refusal, repr(refusal))
        # Not while one is still out: each would wait for the same silent broker, and each
        # fail once it answers (a paused broker: four in 30 s, then four errors).
        if not self._commit_out():
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
                self._commits_failing_since = self._commits_refused_by = None  # none waiting
            return
        sent = False
        try:
            async with asyncio.timeout(COMMIT_TIMEOUT_S):
                if (out := self._commit_out()) is not None:
                    # The stop's or a rebalance's commit: after the one out, not beside it.
                    # aiokafka retries a commit until Kafka answers, and would send the older
                    # after the newer was taken, putting the group's commit back.
                    await asyncio.wait({out})  # not cancelled with this wait
                sent = True
                await self._commit_waited(consumer, offsets)
        except (KafkaError, TimeoutError) as exc:  # e.g. a rebalance began, or the broker is
            # away: the records will come back
            failure: Exception = exc
            if isinstance(exc, TimeoutError) and sent:  # Kafka may have taken it
                for tp, offset in offsets.items():  # (consumers.skips)
                    self._skips.unanswered(tp, offset.offset)
            if isinstance(exc, TimeoutError) and (
                    refusal := self._give_up_on_gone(consumer)) is not None:
                failure = refusal  # this one's, or the one out before it, holding it back
            self._note_commit_failure(failure)
            self._commit_failed(failure, repr(failure) if isinstance(failure, KafkaError)
                                else f"no answer within {COMMIT_TIMEOUT_S}s")
            return
        self._commits_failing_since = self._commits_refused_by = None
        for tp, offset in offsets.items():
            self._committed[tp] = offset.offset
            self._skips.committed(tp, offset.offset)

    async def _commit_waited(self, consumer: AIOKafkaConsumer,
                             offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        """consumer.commit(offsets) in a task of ours, waited for but not cancelled when the
        wait is (timed out, or the stop). Cancelled, aiokafka's commit would leave the request
        it shields out, with no handle on it (asyncio.shield in Python 3.11 drops its interest
        in it), and its failure once Kafka answered (the member gone from the group meanwhile)
        was logged by asyncio as 'Task exception was never retrieved', with a traceback. Left
        to run, it is retrieved once it ends, and said as the commit failure it is."""
        request = asyncio.ensure_future(consumer.commit(offsets))
        self._commit_request = request
        self._commit_topics = frozenset(tp.topic for tp in offsets)
        self._commit_left_out = False
        try:
            await asyncio.wait({request})
        except asyncio.CancelledError:
            self._commit_left_out = True
            request.add_done_callback(self._commit_request_ended)
            raise
        request.result()

    def _note_commit_failure(self, exc: Exception) -> None:
        """What /readyz is told of a failed commit. A refusal Kafka answered (an ACL revoked,
        a commit too large) is kept by its name: it was said `Kafka unreachable`, sending the
        operator to the network for what is to fix in Kafka. A rebalance's answer is not a
        failure of Kafka's: it ends the failures in a row."""
        if isinstance(exc, REBALANCE_ANSWERS):
            self._commits_failing_since = self._commits_refused_by = None
            return
        if self._commits_failing_since is None:
            self._commits_failing_since = time.time()
        # Retriable ones (the coordinator moving, a connection lost) aiokafka retries until
        # COMMIT_TIMEOUT_S: one reaching here says Kafka is away, not what to fix in it.
        refused = isinstance(exc, REFUSED_FOR_GOOD) or (
            isinstance(exc, BrokerResponseError) and not exc.retriable)
        self._commits_refused_by = type(exc).__name__ if refused else None

    def _give_up_on_gone(self, consumer: AIOKafkaConsumer
                         ) -> UnknownTopicOrPartitionError | None:
        """Cancel the commit out if it names a topic Kafka no longer has (deleted; Kafka's
        refusal, returned): aiokafka would retry it for ever, and every later commit wait for
        it (the partitions of the worker's other topics were committed no more until a
        restart). Its records come back, at-least-once; the group's rebalance takes the
        topic's partitions away, and the next commit goes."""
        out = self._commit_out()
        if (out is None or not self._commit_left_out  # its waiter gives up on it first
                or not (gone := _topics_gone(consumer, self._commit_topics))):
            return None
        out.cancel()
        return UnknownTopicOrPartitionError(
            f"Kafka has no topic {', '.join(gone)} any more; the commit was given up")

    def _commit_out(self) -> asyncio.Task[None] | None:
        """The commit sent that Kafka has not answered yet, if any."""
        request = self._commit_request
        return request if request is not None and not request.done() else None

    def _end_commits(self) -> None:
        """Once the consumer has stopped: the commit still out ends. The consumer's stop
        closed its connections, failing the request (no answer to lose), and aiokafka retries
        a commit without a coordinator for ever (every retry_backoff_ms)."""
        if (out := self._commit_out()) is not None:
            out.cancel()  # said failed already, when it was given up on

    def _commit_request_ended(self, request: asyncio.Task[None]) -> None:
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
        # Throttled as retries are: where Kafka refuses at once, each worker fails a commit
        # every interval for as long as it lasts (with no answer, one is out until it comes).
        self._outage_log(logging.WARNING, "commit failed",
                         {"worker": self.name, "error_type": type(exc).__name__}, error=error)


def _topics_gone(consumer: AIOKafkaConsumer, topics: frozenset[str]) -> list[str]:
    """Those of `topics` Kafka's metadata no longer has (deleted): a commit naming them is
    refused, and aiokafka retries it without end. While Kafka is away its metadata is the last
    it answered, which had them."""
    return sorted(topic for topic in topics if not consumer.partitions_for_topic(topic))
