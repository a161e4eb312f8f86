"""The consumer runtime every worker uses: a Kafka consumer group around a plain async handler.

Guarantees, in order of importance:
- an offset is committed only once the handler finished that record and every record before
  it in its partition (at-least-once; handlers make their effects idempotent); commits are
  batched, at most one per fetch;
- records with the same key are handled one after another, in offset order; different keys
  run concurrently, up to `max_concurrency`, and fetching goes on while they run (a slow
  record holds back only its own key and its partition's commit, never the next fetch); a
  record only waiting (Context.wait_to_retry, handling.slot_given_up) leaves its slot to
  another meanwhile;
  with `max_in_flight` records out, fetching pauses, but commits and the group membership
  go on;
- a failing handler is retried with backoff; after `max_attempts` the record goes to the
  dead-letter topic with the error and the partition moves on (no stuck partition); a
  failure to publish while Kafka is away spends no attempt: the record waits for Kafka;
- a rebalance or SIGTERM waits for the batch in flight, commits it, then lets go; a failure
  of the consuming loop (a fetch Kafka refuses) waits for it too, commits none of it, and
  stops the producer only after (Assignment.finish_after);
- no record of a partition newly assigned starts before the `on_assigned` hooks have run
  for it; a failure (Kafka away) is retried until it passes or the worker stops.

What handlers see of it (Record, Context and the exceptions that steer retries) is in
consumers.handling; a record's attempts, retries and dead letter in consumers.attempts;
records started in key order, within the slots, in consumers.dispatch; partitions assigned and
taken away in consumers.assignment; the batches fetched, and polling paused while it waits, in
consumers.fetching.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

from aiokafka import AIOKafkaConsumer, TopicPartition

from consumers.assignment import Assignment, _CommitOnRevoke
from consumers.attempts import Attempts
from consumers.attempts import RetryPolicy as RetryPolicy  # where it always was
from consumers.commits import Commits
from consumers.dispatch import Dispatch
from consumers.fetching import Fetching
from consumers.handling import Context, Handler
from consumers.kafka_watch import KafkaProblem, KafkaWatch
from consumers.positions import StartPositions
from consumers.skips import Skips
from consumers.unreadable import UnreadableRecord as UnreadableRecord  # where it always was
from consumers.unreadable import UnreadableStop
from consumers.worker_metrics import (
    HANDLED,
    HANDLER_SECONDS,
    IN_FLIGHT,
    PARTITIONS,
    initialize,
)
from switchboard.clients import KafkaTarget, as_connection, kafka_options, stop_consumer
from switchboard.futures import retrieve
from switchboard.logs import get_logger
from switchboard.producer import NEW_PARTITIONS_WITHIN_S, DurableProducer
from switchboard.throttle import ThrottledLog

log = get_logger(__name__)

# A Kafka or provider outage fails every record in flight at each backoff: their retry lines
# are said in full once per worker, cause and error type in this window, then counted; so
# are failed commits, per worker and error type.
RETRY_LOG_WINDOW_S = 60.0
# Leaving the group at a stop gets this long for the coordinator's answer. aiokafka waits up to
# the consumer's request timeout (the rebalance timeout and 5 s: 125 s) where the broker has
# gone without a word (packets dropped); the group hands the partitions on after its session
# timeout anyway, and what was not committed is handled by their next owner, as after a crash.
LEAVE_TIMEOUT_S = 10.0
# Asked of the group coordinator at each join: a broker whose group.min/max.session.timeout.ms
# leave it out refuses the worker its group (InvalidSessionTimeoutError).
SESSION_TIMEOUT_MS = 10_000


class WorkerRuntime(Assignment, Attempts, Commits, Dispatch, Fetching, KafkaWatch,
                    UnreadableStop):
    def __init__(
        self,
        *,
        name: str,
        kafka: KafkaTarget,
        topics: Sequence[str],
        handler: Handler,
        group_id: str | None = None,
        max_concurrency: int = 32,
        max_batch: int = 500,
        max_in_flight: int = 2000,
        commit_interval_s: float = 0.2,
        retry: RetryPolicy | None = None,
        producer: DurableProducer | None = None,
        start_from: Literal["earliest", "latest"] = "earliest",
        handler_timeout_s: float | None = None,
    ) -> None:
        self.name = name
        self.kafka = kafka
        self.topics = list(topics)
        self.handler = handler
        # Handlers see the plain topic names the code uses; the cluster has prefixed ones,
        # which the logs give (an operator looks them up there).
        self._connection = connection = as_connection(kafka)
        self._subscribed = [connection.topic(topic) for topic in self.topics]
        self.group_id = connection.group(group_id or f"switchboard-{name}")
        self.max_concurrency = max_concurrency
        self.max_batch = max_batch
        self.retry = retry or RetryPolicy()
        self.producer = producer or DurableProducer(kafka, role=name)
        self.context = Context(self.producer, name)
        self._winding_down = self.context.winding_down
        # Where a brand-new group starts: the sender must not skip commands ("earliest"); a new
        # bot must not answer last week's messages ("latest"). Restarts resume from commits.
        # With "latest", a partition without a commit in a group that has begun (one added
        # to the topic, say) starts at the first record since it began; with either, one
        # whose commit Kafka deleted the records of (retention) at its first record, said
        # (consumers.positions).
        self.start_from = start_from
        self._starts: StartPositions | None = None  # set by run()
        # Records Kafka deleted below the position while running: said (consumers.skips).
        self._skips = Skips(name)
        # A handler that never returns would hold its partition's commits (and a rebalance,
        # and shutdown) for ever: past this it counts as failed, so it is retried, then kept.
        self.handler_timeout_s = handler_timeout_s
        # How long the group waits for this member to rejoin at a rebalance (see run()).
        self._rebalance_timeout_s = max(120.0, (handler_timeout_s or 0) + 60)
        self.ready = asyncio.Event()  # set once partitions are assigned and positioned
        self._concurrency = asyncio.Semaphore(max_concurrency)
        self._capacity = asyncio.Semaphore(max_in_flight)
        self._tails: dict[tuple[str, int, bytes | None], asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight: dict[TopicPartition, set[int]] = defaultdict(set)
        self._fetched: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._failure: Exception | None = None
        self._stopped_by: Exception | None = None  # raised by run() once stopped cleanly
        self.commit_interval_s = commit_interval_s
        self._seconds = HANDLER_SECONDS.labels(name)  # per-record metrics without lookups
        self._outage_log = ThrottledLog(log, RETRY_LOG_WINDOW_S)
        self._ok = HANDLED.labels(name, "ok")
        initialize(name)  # its alerted counters scraped at 0 before any record
        # Read at each scrape, from the metrics thread (len() of a set is safe there); the set
        # only, not the runtime, is kept by the registry.
        tasks = self._tasks
        IN_FLIGHT.labels(name).set_function(lambda: len(tasks))
        self._last_commit = 0.0
        self._committing: asyncio.Task[None] | None = None
        # Run for partitions newly assigned before any of their records starts: they ready
        # state the handler relies on (the sender's ledger caught up with what the partition's
        # previous owner did). Retried until they succeed (Kafka away) or the worker stops.
        self.on_assigned: list[Callable[[list[TopicPartition]], Awaitable[None]]] = []
        self._prepared: set[TopicPartition] = set()  # hooks done since they were assigned
        # What SIGHUP asks of this worker, where it is not a closed terminal's (a stop): the
        # bots read their rules again; None, the sender's, has nothing to reload.
        self.on_hang_up: Callable[[], None] | None = None
        # Partitions a fetch answered across a rebalance moved: read again from their
        # committed offset (or, with none, from the first record that fetch gave).
        self._reposition: dict[TopicPartition, int] = {}
        self._unprepared_by: str | None = None  # why getting them ready last failed
        self._stopping = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        # What /readyz says of Kafka (_watch_kafka), and what it is judged from. Wall clock
        # times, as aiokafka's of the last fetch answered.
        self._kafka_problem: KafkaProblem | None = None
        self._kafka_silent_since = 0.0
        self._rebalancing_since: float | None = None
        self._commits_failing_since: float | None = None
        self._fetching: set[TopicPartition] = set()  # assigned and not paused
        self._fetching_since = 0.0
        self._idle_answered = 0.0  # when Kafka last answered _ask_while_idle
        self._lagging: set[TopicPartition] = set()  # those LAG has a value for
        # Bumped when partitions are taken away: a batch fetched before must not start more
        # records (the new owner handles them, from the offset committed on the way out).
        self._generation = 0
        self.handled = 0

    def problem(self) -> str | None:
        """Why the worker is not consuming (yet, or any more); None while it is."""
        if self._failure is not None:
            return f"stopped by a failure: {type(self._failure).__name__}"
        if self._stopping.is_set():
            return "stopping"
        if self._unprepared_by is not None:
            return f"new partitions not ready: {self._unprepared_by}"
        if self._consumer is None:
            return "starting"
        return None if self._kafka_problem is None else self._kafka_problem.reason

    def stop(self) -> None:
        """Ask the loop to finish the records started, commit, and return."""
        self._stopping.set()
        self._winding_down.set()

    def stop_because(self, exc: Exception) -> None:
        """Stop as `stop` does (what started is finished and committed), then `run` raises
        `exc`: the worker cannot go on, though nothing it handled went wrong."""
        self._stopped_by = self._stopped_by or exc
        self.stop()

    def fail(self, exc: Exception) -> None:
        """Stop without starting another record or committing: `run` raises `exc`."""
        self._failure = self._failure or exc
        self._generation += 1
        self._stopping.set()
        self._winding_down.set()

    async def run(self) -> None:
        if not self.producer.started:
            await self.producer.start()
        # Before any position: none skipped.
        self._starts = StartPositions(self.name, latest=self.start_from == "latest")
        rebalance_ms = int(1000 * self._rebalance_timeout_s)
        consumer = AIOKafkaConsumer(
            **kafka_options(self.kafka, self.name),
            group_id=self.group_id,
            enable_auto_commit=False,
            # Also where a position falls below the partition's first record (Kafka deleted
            # the records: retention, kafka-delete-records), the oldest kept, not the end:
            # "latest" would skip every record kept (consumers.skips says what was lost). A
            # bot's partitions without a commit never get it: StartPositions places them
            # before any of their records starts.
            auto_offset_reset="earliest",
            max_poll_records=self.max_batch,
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=2_000,
            # How long the group waits for this member to rejoin. It rejoins once release()
            # has finished what started (a provider call, up to its timeout_s; a bot, up to
            # handler_timeout_s): aiokafka's default, the session timeout, would drop it from
            # the group meanwhile and hand its partitions on while it is still sending.
            rebalance_timeout_ms=rebalance_ms,
            # The coordinator holds a JoinGroup up to rebalance_timeout_ms; aiokafka times it
            # out like any request (40 s by default): longer, as the Java client does.
            request_timeout_ms=rebalance_ms + 5_000,
            # Partitions added to its topics are taken on (a rebalance) at the next refresh:
            # as soon as producers write to them, not 5 minutes later (aiokafka's default).
            metadata_max_age_ms=int(NEW_PARTITIONS_WITHIN_S * 1000),
        )
        consumer.subscribe(self._subscribed, listener=_CommitOnRevoke(self))
        try:
            joined = await self._join(consumer)
        except BaseException:  # Ctrl-C during start-up too: close what was opened
            await self._leave(consumer)
            await self.producer.stop()
            raise
        if not joined:  # stopped before the group gave it anything
            await self._leave(consumer)
            await self.producer.stop()
            log.info("worker stopped before it joined its group", worker=self.name,
                     group=self.group_id)
            self._raise_why_stopped()
            return
        self._consumer = consumer
        log.info("worker started", worker=self.name, topics=self._subscribed,
                 group=self.group_id)
        self._fetching_since = time.time()  # Kafka's answers get their time from now
        watching = asyncio.create_task(self._watch_kafka(consumer))
        asking = asyncio.create_task(self._ask_while_idle(consumer))
        try:
            while not self._stopping.is_set() and self._failure is None:
                if not self.ready.is_set() and consumer.assignment():
                    await self._get_ready(consumer)
                if self._reposition or not consumer.assignment() <= self._prepared:
                    await self._prepare(consumer)
                    continue
                batch = await self._next_batch(consumer)
                if batch:
                    await self._dispatch(batch)
                self._maybe_commit(consumer)
            await self.drain(consumer)
            await self._skips.settle()  # what the last fetches lost is said, not dropped
        except Exception as exc:  # a fetch Kafka refused, say: raised once what started ends
            await self.finish_after(exc)
            raise
        finally:
            watching.cancel()
            asking.cancel()
            self._skips.cancel()
            try:
                await self._leave(consumer)  # leaves the group: partitions move on at once
            finally:
                self._end_commits()  # after the stop: it failed the request still out
            PARTITIONS.labels(self.name).set(0)
            await self.producer.stop()
            self._outage_log.flush()  # retries and failed commits held back: not lost
            log.info("worker stopped", worker=self.name, handled=self.handled)
        self._raise_why_stopped()

    async def _leave(self, consumer: AIOKafkaConsumer) -> None:
        """Stop the consumer, which leaves the group, within LEAVE_TIMEOUT_S: past it, its
        connections are closed under it, failing the request still waiting for an answer, and
        aiokafka's stop finishes its own clean-up (cancelled, it would leave its fetcher and
        connections open). Given up, not waited for, after as long again."""
        stopping = asyncio.ensure_future(stop_consumer(consumer))
        try:
            done, _ = await asyncio.wait({stopping}, timeout=LEAVE_TIMEOUT_S)
            if not done:
                log.warning("leaving the consumer group got no answer; closing its connections "
                            "(its partitions move on once the group's session times out)",
                            worker=self.name, group=self.group_id, waited_s=LEAVE_TIMEOUT_S)
                for connection in list(consumer._client._conns.values()):
                    connection.close()  # fails the requests waiting: they get no answer
                await asyncio.wait({stopping}, timeout=LEAVE_TIMEOUT_S)
        finally:
            if given_up := not stopping.done():  # a stop stuck elsewhere, or our cancellation
                stopping.cancel()
                stopping.add_done_callback(retrieve)
        if not given_up:
            stopping.result()

    def _raise_why_stopped(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._stopped_by is not None:
            raise self._stopped_by
