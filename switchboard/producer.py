"""A Kafka producer that returns only once every record is acknowledged by all in-sync replicas.

Ingest answers a provider 2xx only after `publish` returns; anything else (timeout, broker
down, record too large) raises PublishError so the caller can answer 503 and the provider
retries. Records already handed to the client may still land after a timeout: consumers see
at-least-once delivery and rely on the deterministic event ids.

Why group commit: aiokafka's per-record `send` costs a partitioner call, an accumulator
lookup and a future per record, and the client keeps one produce request in flight per
broker anyway. So records of concurrent `publish` calls are gathered into one group while
the previous group is in flight, appended straight into batch builders, and handed over
together; every caller waits for the acknowledgement of its whole group.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import weakref
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from switchboard.clients import KafkaTarget, as_connection
from switchboard.futures import retrieve
from switchboard.logs import get_logger
from switchboard.producer_ends import Outcome, RoundTripEnds
from switchboard.producer_placement import MAX_REQUEST_BYTES, RecordPlacement
from switchboard.producer_turnover import spent_a_sequence
from switchboard.records import OutRecord
from switchboard.round_trip import (
    BEHIND_UNANSWERED,
    REFUSED_FOR_GOOD,
    Group,
    Partition,
    PublishError,
    Sent,
    failed_any,
    not_acknowledged,
    refused_partitions,
    stored_any,
)
from switchboard.tasklog import detached

__all__ = ["DurableProducer", "PublishError"]

log = get_logger(__name__)

# A batch is closed once past this; a larger single record still gets a batch of its own.
# Well under the 2 MiB max.message.bytes of our topics that carry raw bodies.
MAX_BATCH_BYTES = 512 * 1024
# Partitions added to a topic (kafka-topics.sh --alter --partitions) are noticed at a client's
# next metadata refresh, this often (aiokafka's default is 5 minutes), by every client that
# must: producers (noticing minutes apart they would write a key to two partitions meanwhile),
# the worker groups, the tables (a STOP written there unseen that long) and ingest's index of
# results (reports left uncorrelated). One small request per client each time.
NEW_PARTITIONS_WITHIN_S = 10.0
# Fractions of the produce timeout after a round trip went out: when the callers whose batches
# have ended are answered, and when batches still out are left to end by themselves (_send).
SETTLE_AFTER = 0.1
DETACH_AFTER = 0.5


class DurableProducer(RecordPlacement, RoundTripEnds):
    def __init__(self, kafka: KafkaTarget, *, role: str = "producer",
                 timeout_s: float = 5.0) -> None:
        self.kafka = kafka
        self._name_prefix = as_connection(kafka).name_prefix
        self.role = role
        self.timeout_s = timeout_s
        self._producer: AIOKafkaProducer | None = None
        self.started = False
        self._open: Group | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._buffered = 0
        self._hashes: dict[bytes, int] = {}
        # The topics the client's metadata refresh asks for (_track), and the client.
        self._tracked: set[str] = set()
        self._tracking: AIOKafkaProducer | None = None
        self._failing = False
        # Whether the last round trip stored nothing, for a reason that passes, and whether
        # one is out now: see publish. When Kafka last acknowledged a batch: _note_outcome.
        self._storing_nothing = False
        self._sending = False
        self._stored_at = -math.inf
        # The partitions that failed since Kafka was last seen taking records: _note_outcome.
        self._failed: set[Partition] = set()
        # Partitions with batches still out after their round trip ended (_hold), how many
        # each, and those batches by client (a client's stop gives up on its own).
        self._stuck: dict[Partition, int] = {}
        self._held: dict[AIOKafkaProducer, set[asyncio.Future[Any]]] = {}
        self._holding: set[asyncio.Task[None]] = set()
        # A client taking the place of one that can no longer write some partition: being
        # connected, then connected and waiting for the next round trip; old ones stopping.
        self._replacing: asyncio.Task[None] | None = None
        self._fresh: AIOKafkaProducer | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        # The partitions the old one can no longer write: refused until the new one is in.
        self._spoiled: set[Partition] = set()
        self._stopped: weakref.WeakSet[AIOKafkaProducer] = weakref.WeakSet()

    async def start(self) -> None:
        self._producer = await self._connect()
        self.started = True

    async def _connect(self) -> AIOKafkaProducer:
        # Built here, not in __init__: aiokafka binds to the running event loop.
        producer = AIOKafkaProducer(
            **as_connection(self.kafka).producer_options(self.role),
            acks="all",
            enable_idempotence=True,
            linger_ms=0,  # groups are the batching; lingering would only add latency
            max_batch_size=MAX_BATCH_BYTES,
            max_request_size=MAX_REQUEST_BYTES,
            request_timeout_ms=max(1000, int(self.timeout_s * 1000)),
            retry_backoff_ms=100,
            metadata_max_age_ms=int(NEW_PARTITIONS_WITHIN_S * 1000),
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        return producer

    async def stop(self) -> None:
        self.started = False
        if self._flusher is not None:  # hand over what callers are still waiting for
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._flusher), self.timeout_s * 2)
        if self._replacing is not None:  # it stops its new client itself, seeing the stop
            await asyncio.shield(self._replacing)
        fresh, self._fresh = self._fresh, None
        self._replacement_over()
        if fresh is not None:  # connected, never written with
            await fresh.stop()
        producer, self._producer = self._producer, None
        if producer is not None:
            await self._stop_client(producer)
        for tasks in (self._retiring, self._holding):
            # Each ends by the time its client has stopped, which gives up what it held.
            while pending := {task for task in tasks if not task.done()}:
                await asyncio.wait(pending)
        if self._flusher is not None:
            await asyncio.shield(self._flusher)

    async def publish(self, records: Sequence[OutRecord]) -> None:
        """Send all records and wait for every acknowledgement (acks=all), or raise.

        Records name their topics plainly; they land on the connection's prefixed names."""
        producer = self._producer
        if producer is None:
            raise PublishError("Kafka producer is not connected")
        if not records:
            return
        if self._storing_nothing and self._sending:
            # Kafka stored nothing of the last round trip (away, stalled, short of in-sync
            # replicas), and the one now out will tell whether it is back: this caller would
            # wait out the timeout behind it (its group is sent only after), for the same
            # 503 at the end. A 503 now is as safe, and holds no request or record meanwhile.
            raise PublishError("Kafka is not taking records; not waiting while a round trip "
                               "finds out whether it is back")
        cluster = producer.client.cluster
        topics = [self._name_prefix + r.topic for r in records]
        partitions = [len(cluster.partitions_for_topic(topic) or ()) for topic in topics]
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        if 0 in partitions:
            # The time spent learning a topic counts against the caller's own timeout: its
            # round trip then waiting the whole timeout too had a request answered only after
            # twice the timeout, when Webex Connect has given up (at 10 s, twice the default).
            deadline = loop.time() + self.timeout_s
            partitions = await self._partition_counts(producer, topics, partitions, deadline)
        written, sizes = self._placed(records, topics, partitions)

        group = self._open
        if group is None:
            group = self._open = Group()
            # Detached: it gives up for every caller of the group, the first one's record
            # (whose log fields it would copy) as much as the others'.
            group.timer = loop.call_later(self.timeout_s, self._expire, group,
                                          context=detached())
        # No await from here to the waiter: all records of one call join the same group.
        for record, partition, size in zip(records, written, sizes, strict=True):
            self._append(producer, group, record, partition)
            group.size += size
        self._buffered += sum(sizes)
        waiter: asyncio.Future[PublishError | None] = loop.create_future()
        group.waiters.append((waiter, written))
        if self._flusher is None:  # it sends for every caller: it names none in its lines
            self._flusher = loop.create_task(self._flush(), context=detached())
        if deadline is None:
            failure = await waiter
        else:
            failure = await self._answer_by(waiter, deadline)
        if failure is not None:  # one of its own for each caller: a raise writes a traceback in
            raise PublishError(str(failure), lasting=failure.lasting)

    async def _answer_by(self, waiter: asyncio.Future[PublishError | None], deadline: float
                         ) -> PublishError | None:
        """The waiter's outcome, or a failure at the deadline: the caller's group started its
        own timeout later, once the caller had learnt its topics."""
        try:
            async with asyncio.timeout_at(deadline):
                return await waiter
        except TimeoutError:
            return not_acknowledged(self.timeout_s)

    @staticmethod
    def _append(producer: AIOKafkaProducer, group: Group, record: OutRecord,
                partition: Partition) -> None:
        builders = group.batches.setdefault(partition, [])
        if builders and builders[-1].append(timestamp=None, key=record.key,
                                            value=record.value, headers=record.headers):
            return
        builder = producer.create_batch()  # the first record of a batch always fits
        builder.append(timestamp=None, key=record.key, value=record.value,
                       headers=record.headers)
        builders.append(builder)

    def _expire(self, group: Group) -> None:
        """Callers stop waiting; a group not yet handed to Kafka is dropped, not sent late."""
        if self._open is group:
            self._open = None
            self._buffered -= group.size
        failure = not_acknowledged(self.timeout_s)
        self._note_unanswered(group, failure)
        group.finish(failure)

    async def _flush(self) -> None:
        """Hand over one group at a time: the next one fills while this one is in flight."""
        try:
            while (group := self._open) is not None:
                self._open = None
                producer = self._producer
                self._sending = True
                outcome: Outcome | None = (PublishError("Kafka producer stopped"), None, False)
                try:
                    outcome = await self._send(group, producer)
                finally:
                    self._sending = False
                    if outcome is not None:  # else a task of its own ends it: _hold
                        self._conclude(group, producer, outcome)
                    if self._fresh is not None:
                        self._take_fresh()
        finally:
            self._flusher = None

    async def _send(self, group: Group, producer: AIOKafkaProducer | None) -> Outcome | None:
        """Hand the group's batches to the client and wait for Kafka's answers: the outcome,
        with the partitions that failed when only they did (the others' records are stored),
        and whether the client can no longer write one (spent_a_sequence).

        None when batches of some partitions are still out at half the timeout while Kafka
        is taking records (_kafka_taking): a partition waiting for a leader, or short of
        in-sync replicas, for which aiokafka retries without end. The callers of the others
        are answered, the group is ended by a task of its own (_hold), and the next round trip
        goes now: waiting for that partition had every request beside it answered 503 at its
        timeout, under steady traffic nearly all of them. A round trip that stored nothing
        while Kafka has stored nothing lately goes on waiting: Kafka may be away or stalled,
        and the callers meanwhile wait for it too rather than get a 503 at once."""
        if producer is None:
            return PublishError("Kafka producer stopped"), None, False
        self._track(producer, {topic for topic, _ in group.batches})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s * 2
        sent: Sent = []
        withheld: dict[Partition, PublishError] = {}
        detach = False
        try:
            async with asyncio.timeout_at(deadline):
                for partition, builders in group.batches.items():
                    if partition in self._stuck:  # since its records joined the group
                        withheld[partition] = PublishError(BEHIND_UNANSWERED)
                        continue
                    for builder in builders:
                        if group.sent_at is None:
                            group.sent_at = loop.time()
                        future = await producer.send_batch(builder, partition[0],
                                                           partition=partition[1])
                        sent.append((partition, future))
                futures = [future for _, future in sent]
                slow: set[asyncio.Future[Any]] = set()
                if futures:
                    _, slow = await asyncio.wait(futures, timeout=self.timeout_s * SETTLE_AFTER)
                if slow:
                    self._settle(group, sent, _partitions_of(sent, slow), withheld)
                    if stored_any(futures):
                        # Kafka is taking records: one arriving now need not fail at once
                        # (see publish) while a partition holds this round trip.
                        self._storing_nothing = False
                    # Left to end by itself, a batch merely slow (a busy cluster) would have
                    # its partition refused until it lands: given time to land first.
                    _, slow = await asyncio.wait(
                        slow, timeout=self.timeout_s * (DETACH_AFTER - SETTLE_AFTER))
                if slow:
                    waiting = _partitions_of(sent, slow)
                    self._settle(group, sent, waiting, withheld)
                    if self._kafka_taking(producer, futures, waiting, loop.time()):
                        detach = True
                        return None
                    await asyncio.wait(slow)
                refused = refused_partitions(sent) | withheld
        except TimeoutError:
            return (not_acknowledged(self.timeout_s), None,
                    failed_any([future for _, future in sent]))
        except KafkaError as exc:
            return (PublishError(f"Kafka refused the records: {exc!r}",
                                 lasting=isinstance(exc, REFUSED_FOR_GOOD)),
                    None, spent_a_sequence(producer, [future for _, future in sent]))
        except Exception as exc:  # noqa: BLE001 - e.g. aiokafka's assertion on a partition
            # it does not know (a topic deleted and made again): the group gets its 503 now,
            # and the flusher goes on with the next, rather than ending unseen.
            log.error("kafka client failed to send", bootstrap=str(self.kafka),
                      error=repr(exc))
            return PublishError(f"the Kafka client failed: {exc!r}"), None, False
        finally:
            # Every outcome read, also of batches still out when the group was answered: no
            # "Future exception was never retrieved" for each.
            for _, future in sent:
                future.add_done_callback(retrieve)
            group.stored_any = stored_any([future for _, future in sent])
            if group.stored_any:
                self._stored_at = loop.time()
            self._hold(producer, sent, withheld, group if detach else None, deadline)
        if refused:
            return (next(iter(refused.values())), refused,
                    spent_a_sequence(producer, futures))
        return None, None, False


def _partitions_of(sent: Sent, futures: set[asyncio.Future[Any]]) -> set[Partition]:
    """The partitions of these batches."""
    return {partition for partition, future in sent if future in futures}
