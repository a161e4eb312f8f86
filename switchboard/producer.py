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
import random
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    UnsupportedForMessageFormatError,
)

from switchboard.clients import KafkaTarget, as_connection
from switchboard.futures import retrieve
from switchboard.logs import get_logger
from switchboard.murmur2 import murmur2
from switchboard.records import OutRecord
from switchboard.tasklog import detached

log = get_logger(__name__)

MAX_REQUEST_BYTES = 3 * 1024 * 1024
# A batch is closed once past this; a larger single record still gets a batch of its own.
# Well under the 2 MiB max.message.bytes of our topics that carry raw bodies.
MAX_BATCH_BYTES = 512 * 1024
# While Kafka is slow or away, groups wait in memory; past this, publish fails at once.
MAX_BUFFERED_BYTES = 64 * 1024 * 1024
# Record framing (lengths, offsets, timestamps) on top of key, value and headers.
RECORD_OVERHEAD_BYTES = 64
# Hashing a key is pure Python (switchboard.murmur2); conversations repeat, so remember recent
# ones.
PARTITION_CACHE_SIZE = 65_536
# Partitions added to a topic (kafka-topics.sh --alter --partitions) are noticed at a client's
# next metadata refresh, this often (aiokafka's default is 5 minutes), by every client that
# must: producers (noticing minutes apart they would write a key to two partitions meanwhile),
# the worker groups, the tables (a STOP written there unseen that long) and ingest's index of
# results (reports left uncorrelated). One small request per client each time.
NEW_PARTITIONS_WITHIN_S = 10.0


class PublishError(Exception):
    """Kafka did not acknowledge in time; nothing may be reported as stored.

    `lasting`: Kafka refused the records for what they are (too large, malformed) and would
    again. Every other failure (Kafka away or slow, a leader moving, the client being
    replaced, access not granted yet) passes once Kafka or its settings are back: a worker
    waits those out instead of spending a record's attempts on them."""

    def __init__(self, reason: str, *, lasting: bool = False) -> None:
        super().__init__(reason)
        self.lasting = lasting


# What the broker says of a batch itself: sending it again would be refused again.
_REFUSED_FOR_GOOD = (
    RecordTooLargeError, MessageSizeTooLargeError, RecordListTooLargeError,
    CorruptRecordException, InvalidTimestampError, UnsupportedForMessageFormatError,
)


# A topic (as the cluster names it) and one of its partitions.
Partition = tuple[str, int]


class _Group:
    """Records handed over together; each waiter learns its outcome (None: stored), with the
    partitions its records went to."""

    __slots__ = ("batches", "size", "stored_any", "timer", "waiters")

    def __init__(self) -> None:
        self.batches: dict[Partition, list[Any]] = {}
        self.waiters: list[tuple[asyncio.Future[PublishError | None], list[Partition]]] = []
        self.size = 0
        self.timer: asyncio.TimerHandle | None = None
        self.stored_any = False  # whether Kafka acknowledged any of its batches

    def finish(self, failure: PublishError | None,
               refused: dict[Partition, PublishError] | None = None) -> None:
        """With `refused`, only a caller with a record in one of those partitions fails (with
        that partition's error): Kafka stored the others'. Otherwise each gets `failure`."""
        if self.timer is not None:
            self.timer.cancel()
        for waiter, written in self.waiters:
            if waiter.done():  # cancelled (it stopped listening), or answered by `settle`
                continue
            if refused is None:
                waiter.set_result(failure)
            else:
                waiter.set_result(next((refused[p] for p in written if p in refused), None))
        self.waiters.clear()

    def settle(self, ended: set[Partition], refused: dict[Partition, PublishError]) -> None:
        """Answer now each caller whose partitions' batches have all ended; the others wait."""
        for waiter, written in self.waiters:
            if not waiter.done() and all(p in ended for p in written):
                waiter.set_result(next((refused[p] for p in written if p in refused), None))


def record_size(record: OutRecord) -> int:
    headers = sum(len(name) + len(value or b"") for name, value in record.headers)
    return len(record.value) + len(record.key or b"") + headers + RECORD_OVERHEAD_BYTES


class DurableProducer:
    def __init__(self, kafka: KafkaTarget, *, role: str = "producer",
                 timeout_s: float = 5.0) -> None:
        self.kafka = kafka
        self._name_prefix = as_connection(kafka).name_prefix
        self.role = role
        self.timeout_s = timeout_s
        self._producer: AIOKafkaProducer | None = None
        self.started = False
        self._open: _Group | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._buffered = 0
        self._hashes: dict[bytes, int] = {}
        # The topics the client's metadata refresh asks for (_track), and the client.
        self._tracked: set[str] = set()
        self._tracking: AIOKafkaProducer | None = None
        self._failing = False
        # Whether the last round trip stored nothing, for a reason that passes, and whether
        # one is out now: see publish.
        self._storing_nothing = False
        self._sending = False
        # The partitions that failed since Kafka was last seen taking records: _note_outcome.
        self._failed: set[Partition] = set()
        # Set when a batch the client had taken failed: see _renew.
        self._spoiled: AIOKafkaProducer | None = None

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
        producer, self._producer = self._producer, None
        if producer is not None:
            await self._stop_client(producer)
        if self._flusher is not None:
            # Still replacing a client (_renew), its old one's stop bounded by _stop_client:
            # the new one is stopped there once that ends, and must not outlive this.
            await asyncio.shield(self._flusher)

    async def _stop_client(self, producer: AIOKafkaProducer) -> None:
        """aiokafka's stop sends what is pending first, retrying for as long as Kafka is away.
        Every caller has had its answer by now (a 503 at the latest after the timeout), so
        records still pending are ones nobody was told were stored: stop without them."""
        stopping = asyncio.ensure_future(producer.stop())
        done, _ = await asyncio.wait([stopping], timeout=self.timeout_s * 2)
        if not done:
            log.warning("stopping without the records Kafka has not taken; their requests "
                        "were not answered 2xx", bootstrap=str(self.kafka))
            sender = getattr(producer, "_sender", None)  # private: aiokafka has no abort
            if sender is not None and sender.sender_task is not None:
                sender.sender_task.cancel()  # its stop() waits on this task, then closes
        await stopping

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
            # Not while a client is being replaced (_renew): the next group is its first.
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
        sizes = [record_size(r) for r in records]
        too_large = max(sizes)
        if too_large > MAX_REQUEST_BYTES:
            raise PublishError(f"a record of {too_large} bytes exceeds the "
                               f"{MAX_REQUEST_BYTES}-byte limit", lasting=True)
        if self._buffered + sum(sizes) > MAX_BUFFERED_BYTES:
            raise PublishError("too many records are waiting for Kafka")

        group = self._open
        if group is None:
            group = self._open = _Group()
            group.timer = loop.call_later(self.timeout_s, self._expire, group)
        # No await from here to the waiter: all records of one call join the same group.
        written: list[Partition] = []
        for record, topic, count, size in zip(records, topics, partitions, sizes, strict=True):
            partition = (topic, self._partition(record.key, count))
            self._append(producer, group, record, partition)
            written.append(partition)
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

    def _track(self, producer: AIOKafkaProducer, topics: set[str]) -> None:
        """Have the client's metadata refresh ask for the topics it writes. It learns of every
        topic of the cluster at its start and, as their partitions are known, never names one:
        each refresh (every NEW_PARTITIONS_WITHIN_S) would ask for all, on a shared cluster
        thousands."""
        if producer is not self._tracking:  # a new client (_renew) tracks nothing yet
            self._tracking, self._tracked = producer, set()
        elif topics <= self._tracked:
            return
        for topic in topics - self._tracked:
            # A refresh at once, whose outcome nothing waits for: the partitions are known.
            producer.client.add_topic(topic)
        self._tracked |= topics

    async def _partition_counts(self, producer: AIOKafkaProducer, topics: list[str],
                                counts: list[int], deadline: float) -> list[int]:
        """`counts` with those of the topics not in the client's metadata yet (0) asked of
        the cluster, all by the deadline."""
        learnt: dict[str, int] = {}
        for topic in {topic for topic, count in zip(topics, counts, strict=True) if not count}:
            try:
                async with asyncio.timeout_at(deadline):
                    count = len(await producer.partitions_for(topic))
            except TimeoutError:
                raise PublishError(f"no metadata for topic {topic!r}") from None
            except KafkaError as exc:
                raise PublishError(f"no metadata for topic {topic!r}: {exc!r}") from exc
            if not count:
                raise PublishError(f"topic {topic!r} has no partitions")
            learnt[topic] = count
        return [count or learnt[topic] for topic, count in zip(topics, counts, strict=True)]

    async def _answer_by(self, waiter: asyncio.Future[PublishError | None], deadline: float
                         ) -> PublishError | None:
        """The waiter's outcome, or a failure at the deadline: the caller's group started its
        own timeout later, once the caller had learnt its topics."""
        try:
            async with asyncio.timeout_at(deadline):
                return await waiter
        except TimeoutError:
            return PublishError(f"Kafka did not acknowledge within {self.timeout_s}s")

    def _partition(self, key: bytes | None, count: int) -> int:
        """The partition aiokafka's (and Java's) default partitioner would choose."""
        if key is None:
            return random.randrange(count)
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= PARTITION_CACHE_SIZE:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return hashed % count

    @staticmethod
    def _append(producer: AIOKafkaProducer, group: _Group, record: OutRecord,
                partition: Partition) -> None:
        builders = group.batches.setdefault(partition, [])
        if builders and builders[-1].append(timestamp=None, key=record.key,
                                            value=record.value, headers=record.headers):
            return
        builder = producer.create_batch()  # the first record of a batch always fits
        builder.append(timestamp=None, key=record.key, value=record.value,
                       headers=record.headers)
        builders.append(builder)

    def _expire(self, group: _Group) -> None:
        """Callers stop waiting; a group not yet handed to Kafka is dropped, not sent late."""
        if self._open is group:
            self._open = None
            self._buffered -= group.size
        group.finish(PublishError(f"Kafka did not acknowledge within {self.timeout_s}s"))

    def _note_outcome(self, group: _Group, failure: PublishError | None,
                      refused: dict[Partition, PublishError] | None) -> None:
        """Say when Kafka stops and starts taking records again: the client's own logs
        report every retry but never the recovery. Taking again means for a partition that
        had failed: while one is refused or waits for a leader, the others' round trips
        succeed, and the two lines alternated at each of its failures."""
        # Kafka refusing a record for what it is (too large) is Kafka there, taking the rest.
        lasting = failure is not None and (failure.lasting or any(
            error.lasting for error in (refused or {}).values()))
        self._storing_nothing = failure is not None and not group.stored_any and not lasting
        if failure is not None:
            if not self._failing:
                log.warning("kafka is not taking records", bootstrap=str(self.kafka),
                            reason=str(failure))
            self._failing = True
            self._failed |= refused.keys() if refused else group.batches.keys()
        elif self._failing and not self._failed.isdisjoint(group.batches):
            log.info("kafka is taking records again", bootstrap=str(self.kafka))
            self._failing = False
            self._failed.clear()

    async def _flush(self) -> None:
        """Hand over one group at a time: the next one fills while this one is in flight."""
        try:
            while (group := self._open) is not None:
                self._open = None
                self._sending = True
                try:
                    outcome, refused = await self._send(group)
                    self._note_outcome(group, outcome, refused)
                    group.finish(outcome, refused)
                finally:
                    self._sending = False
                    self._buffered -= group.size
                if (spoiled := self._spoiled) is not None:
                    self._spoiled = None
                    await self._renew(spoiled)
        finally:
            self._flusher = None

    async def _send(self, group: _Group
                    ) -> tuple[PublishError | None, dict[Partition, PublishError] | None]:
        """The group's outcome: None, or a failure, and the partitions whose batches Kafka
        refused when only they failed (the other callers' records are stored)."""
        producer = self._producer
        if producer is None:
            return PublishError("Kafka producer stopped"), None
        self._track(producer, {topic for topic, _ in group.batches})
        futures: list[asyncio.Future[Any]] = []
        refused: dict[Partition, PublishError] = {}
        sent: list[tuple[Partition, asyncio.Future[Any]]] = []
        try:
            async with asyncio.timeout(self.timeout_s * 2):
                for partition, builders in group.batches.items():
                    for builder in builders:
                        future = await producer.send_batch(builder, partition[0],
                                                           partition=partition[1])
                        futures.append(future)
                        sent.append((partition, future))
                _, slow = await asyncio.wait(futures, timeout=self.timeout_s / 10)
                if slow:
                    # A partition waiting for a leader would hold the answer of every caller
                    # until the round trip's timeout, a 503 though Kafka stored their records:
                    # those whose partitions are done are answered now.
                    waiting = {partition for partition, future in sent if future in slow}
                    group.settle({p for p, _ in sent} - waiting, _refused(sent))
                    if _stored_any(futures):
                        # Kafka is taking records: its callers are answered, and one arriving
                        # now need not fail at once (see publish) while a leaderless partition
                        # holds this round trip up to the timeout.
                        self._storing_nothing = False
                    await asyncio.wait(slow)
                # A batch refused (too large for the topic as the cluster has it) or dropped
                # (no leader in time) fails the callers with a record in its partition, not
                # every caller of the round trip.
                refused = _refused(sent)
        except TimeoutError:
            if _refused(sent):
                self._spoiled = producer
            return PublishError(f"Kafka did not acknowledge within {self.timeout_s}s"), None
        except KafkaError as exc:
            if _spent_a_sequence(producer, futures):
                self._spoiled = producer
            return PublishError(f"Kafka refused the records: {exc!r}",
                                lasting=isinstance(exc, _REFUSED_FOR_GOOD)), None
        except Exception as exc:  # noqa: BLE001 - e.g. aiokafka's assertion on a partition
            # it does not know (a topic deleted and made again): the group gets its 503 now,
            # and the flusher goes on with the next, rather than ending unseen.
            log.error("kafka client failed to send", bootstrap=str(self.kafka),
                      error=repr(exc))
            return PublishError(f"the Kafka client failed: {exc!r}"), None
        finally:
            # Every outcome read, also of batches still out when the group was answered: no
            # "Future exception was never retrieved" for each.
            for future in futures:
                future.add_done_callback(retrieve)
            group.stored_any = _stored_any(futures)
        if refused:
            self._spoiled = producer  # see _spent_a_sequence
            return next(iter(refused.values())), refused
        return None, None

    async def _renew(self, spoiled: AIOKafkaProducer) -> None:
        """Put a new client in the place of one that can no longer write some partition: a
        new producer id, whose sequence numbers start afresh. The next group waits meanwhile
        (its callers get their 503 at the usual timeout at worst); what the old client still
        holds was answered 503 and may land as it stops, before the new one sends."""
        if not self.started or self._producer is not spoiled:
            return
        log.warning("replacing the kafka client: a batch it had sent failed, after which it "
                    "would have every later batch of that partition refused as out of order",
                    bootstrap=str(self.kafka))
        try:
            async with asyncio.timeout(self.timeout_s):
                fresh = await self._connect()
        except Exception as exc:  # noqa: BLE001 - keep the old one; tried again on a failure
            log.warning("could not replace the kafka client", bootstrap=str(self.kafka),
                        error=repr(exc))
            return
        # The old client's records first, as far as they land: the new one's must not overtake
        # them in a partition (a compacted topic would keep the older value of a key).
        await self._stop_client(spoiled)
        if not self.started or self._producer is not spoiled:  # stopped meanwhile
            await fresh.stop()
            return
        self._producer = fresh
        self._storing_nothing = False  # it connected: Kafka is there, the next group will say


def _refused(sent: list[tuple[Partition, asyncio.Future[Any]]]
             ) -> dict[Partition, PublishError]:
    """The partitions of the batches that have failed so far, with the first error of each."""
    refused: dict[Partition, PublishError] = {}
    for partition, future in sent:
        if partition not in refused and future.done() and not future.cancelled() \
                and (exc := future.exception()) is not None:
            refused[partition] = PublishError(f"Kafka refused the records: {exc!r}",
                                              lasting=isinstance(exc, _REFUSED_FOR_GOOD))
    return refused


def _stored_any(futures: list[asyncio.Future[Any]]) -> bool:
    """Whether Kafka has acknowledged any of these batches yet."""
    return any(f.done() and not f.cancelled() and f.exception() is None for f in futures)


def _spent_a_sequence(producer: AIOKafkaProducer, futures: list[asyncio.Future[Any]]) -> bool:
    """Whether the client is left unable to write: aiokafka's idempotent producer gives each
    batch its partition's next sequence number when it takes it from its queue and never takes
    one back, so after a batch fails (refused by the broker, or dropped for want of a leader,
    also one never sent: it takes the batch from its queue to drop it) the broker refuses
    every later batch of that partition as out of order (aio-libs/aiokafka#1017).
    A client whose sender task has ended takes nothing any more either."""
    if any(f.done() and not f.cancelled() and f.exception() is not None for f in futures):
        return True
    sender = getattr(producer, "_sender", None)  # private: aiokafka does not say
    task = getattr(sender, "sender_task", None)
    return task is not None and task.done()
