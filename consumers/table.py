"""A compacted Kafka topic read into memory: the latest value per key, kept current.

Used for state several workers share and must survive restarts: the ids of commands already
sent (sender) and the opt-out list (sender and bots). The topic is the durable copy; this is
the fast local view. Here the reading of the topic; what is held of it, and how a key reads,
in consumers.table_values.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition

from consumers.runtime import UnreadableRecord
from consumers.table_archive import Archiving
from consumers.table_values import HeldValues
from switchboard.clients import KafkaTarget, kafka_options, stop_consumer, topic_name
from switchboard.logs import get_logger
from switchboard.producer import NEW_PARTITIONS_WITHIN_S
from switchboard.records import find_unreadable
from switchboard.topics import topic_partitions

log = get_logger(__name__)
V = TypeVar("V")
# After a failed fetch (no permission to read the topic any more, say), wait this long, then
# doubling up to the cap, before the next: retried, never given up.
FOLLOW_RETRY_S = 1.0
FOLLOW_RETRY_MAX_S = 30.0
# How often a load says how far it is ("table loading"): a load of seconds says nothing.
LOAD_PROGRESS_S = 10.0


class MissingTopic(RuntimeError):
    """The table's topic is not on the cluster (SWITCHBOARD_CREATE_TOPICS is off, or it was
    deleted): without this the worker would stop with a traceback that names no way out."""


class UnreadableTableRecord(UnreadableRecord):
    """A record of the table's topic that aiokafka cannot read (see switchboard.records.
    Unreadable). Said as the worker runtime says one of its own topics (`worker` prints it in one
    line and exits 1), but the way out differs: a table is read from its start, without a
    group, so there is no offset to move: the record has to go (README, *Troubleshooting*)."""


class CompactedTable(HeldValues[V]):
    """The follower reads new records as they come, or with `relaxed_follow` lets them gather
    (up to 256 KiB or half a second): for a table read mostly at start and on rebalance (the
    sender's ledger) that would otherwise read back each of its own writes in a fetch.
    Values are decoded when first asked for: most keys never are.

    Each partition holds the last record of a key read there, as compaction keeps it. A key
    with records in several partitions reads as the value that supersedes the others (see
    table_values.Superseding; without, or between equals, the lowest partition's): the same
    whatever order the partitions were read in, so every worker and every restart agree.

    With `archiving`, old entries in a final state are kept as a fingerprint and that state
    only (consumers.table_archive), read back as the partition's record like the others.
    """

    def __init__(self, kafka: KafkaTarget, topic: str, decode: Callable[[bytes], V], *,
                 relaxed_follow: bool = False,
                 stands: Callable[[V, V], bool] | None = None,
                 max_age_s: float | None = None,
                 archiving: Archiving[V] | None = None) -> None:
        self.kafka = kafka
        self.topic = topic
        self._on_cluster = topic_name(kafka, topic)  # what logs and errors name
        super().__init__(self._on_cluster, decode, stands=stands, max_age_s=max_age_s,
                         archiving=archiving)
        self.follow_wait_ms = 500 if relaxed_follow else 100
        self._fetch_min_bytes = 256 * 1024 if relaxed_follow else 1
        self._consumer: AIOKafkaConsumer | None = None
        self._offsets: AIOKafkaConsumer | None = None
        self._partitions: list[TopicPartition] = []
        # Partitions catch_up() found on the cluster before the reader's metadata did: the
        # follower, the only one to change what the reader reads, takes them.
        self._found: set[TopicPartition] = set()
        self._follow: asyncio.Task[None] | None = None
        self._positions: dict[TopicPartition, int] = {}
        self._advanced = asyncio.Condition()
        # Set once the follower met a record it cannot read: catch_up() raises it from then on.
        self.failure: UnreadableTableRecord | None = None
        self._on_failure: Callable[[Exception], None] | None = None

    async def start(self) -> None:
        """Load everything there is now; then follow new records in the background."""
        partitions = await topic_partitions(self.kafka, self.topic)
        if not partitions:
            raise MissingTopic(f"topic {self._on_cluster} does not exist: Switchboard creates "
                               "missing topics at start-up unless SWITCHBOARD_CREATE_TOPICS is "
                               "false; create them, or start once with it true")
        began = time.monotonic()
        # The cycle collector paused while loading: the load makes a record object per record
        # (aiokafka's), each a young collection's work every 700, and nothing it keeps forms
        # cycles (reference counting frees the rest): 8-15 % of a ledger's load CPU. Another
        # load still running when this one ends goes on with it enabled.
        collecting = gc.isenabled()
        gc.disable()
        try:
            await self._load(partitions)
        except BaseException:  # Ctrl-C during start-up too: close what was opened
            await self.stop()
            raise
        finally:
            if collecting:
                gc.enable()
        if self._archived is not None:
            self._archived.sort()
        self._follow = asyncio.create_task(self._follow_forever())
        log.info("table loaded", topic=self._on_cluster, entries=len(self),
                 load_s=round(time.monotonic() - began, 1))

    async def _load(self, partitions: list[TopicPartition]) -> None:
        self._consumer = AIOKafkaConsumer(**kafka_options(self.kafka, f"table-{self.topic}"),
                                          enable_auto_commit=False, auto_offset_reset="earliest",
                                          fetch_max_wait_ms=self.follow_wait_ms,
                                          fetch_min_bytes=self._fetch_min_bytes,
                                          metadata_max_age_ms=int(NEW_PARTITIONS_WITHIN_S * 1000))
        await self._consumer.start()
        self._partitions = partitions
        self._consumer.assign(self._partitions)
        await self._consumer.seek_to_beginning(*self._partitions)
        self._offsets = AIOKafkaConsumer(**kafka_options(self.kafka, f"table-{self.topic}"),
                                         enable_auto_commit=False)
        await self._offsets.start()
        await self._read_until_caught_up()

    async def stop(self) -> None:
        if self._follow is not None:
            self._follow.cancel()
            await asyncio.gather(self._follow, return_exceptions=True)
        if self._consumer is not None:
            await stop_consumer(self._consumer)
        if self._offsets is not None:
            await stop_consumer(self._offsets)

    def on_failure(self, stop: Callable[[Exception], None]) -> None:
        """Have `stop` called with the failure once the follower meets a record it cannot read
        (at once if it has): a worker reading a table whose partition is no longer followed
        would go on with part of it frozen (an opt-out list missing later STOPs)."""
        self._on_failure = stop
        if self.failure is not None:
            stop(self.failure)

    async def catch_up(self, timeout_s: float = 30.0) -> None:
        """Return once every record written before this call is in the table, also in
        partitions added to the topic that the reader's metadata does not list yet."""
        assert self._consumer is not None and self._offsets is not None
        if self.failure is not None:  # its partition is read no further: never caught up
            raise self.failure
        on_cluster = await topic_partitions(self.kafka, self.topic)
        self._found.update(tp for tp in on_cluster if tp not in self._partitions)
        # A separate connection: Kafka answers a connection's requests in order, so asking
        # the reader's client would wait behind its long-poll fetch.
        ends = await self._offsets.end_offsets([*self._partitions, *self._found])
        # position() counts only records getmany() returned, and _poll applies those before
        # it next awaits: at the end offsets means every record is in the table.
        for tp in self._partitions:
            self._positions[tp] = await self._consumer.position(tp)
        async with self._advanced:
            await asyncio.wait_for(
                self._advanced.wait_for(lambda: self.failure is not None or all(
                    self._positions.get(tp, 0) >= end for tp, end in ends.items())),
                timeout_s)
        if self.failure is not None:
            raise self.failure

    async def _read_until_caught_up(self) -> None:
        """Read to the ends the topic had at the start, saying how far every LOAD_PROGRESS_S:
        a sender reads days of its ledger before it sends (minutes, at 100 sends/s)."""
        assert self._consumer is not None
        ends = await self._consumer.end_offsets(self._partitions)
        starts = await self._consumer.beginning_offsets(self._partitions)
        began = time.monotonic()
        report_at = began + LOAD_PROGRESS_S
        while any(self._positions.get(tp, 0) < end for tp, end in ends.items()):
            await self._poll(500)
            if (now := time.monotonic()) >= report_at:
                report_at = now + LOAD_PROGRESS_S
                read = sum(max(0, min(self._positions.get(tp, 0), end) - starts[tp])
                           for tp, end in ends.items())
                log.info("table loading", topic=self._on_cluster, offsets_read=read,
                         offsets_to_read=sum(end - starts[tp] for tp, end in ends.items()),
                         elapsed_s=round(now - began))

    async def _follow_forever(self) -> None:
        """The only reader once started: catch_up() waits on its progress, never on a lock.

        A fetch that fails is logged and retried: a follower that ended quietly would leave
        the table as it was (an opt-out list missing the latest STOPs) with nobody told. A
        record it cannot read is not retried (every fetch of it fails alike): it is logged
        once, its partition read no further, the others followed on, and catch_up() fails."""
        delay_s = FOLLOW_RETRY_S
        while True:
            try:
                await self._read_new_partitions()
                await self._poll(self.follow_wait_ms)
            except UnreadableTableRecord as exc:
                if self.failure is None or str(self.failure) != str(exc):
                    log.error("table record cannot be read; its partition is no longer "
                              "followed", topic=self._on_cluster, error=str(exc))
                if self.failure is None and self._on_failure is not None:
                    self._on_failure(exc)
                self.failure = exc
                async with self._advanced:  # a catch_up() waiting raises it
                    self._advanced.notify_all()
                await asyncio.sleep(delay_s)  # in case it was not found, and so not paused
                delay_s = min(delay_s * 2, FOLLOW_RETRY_MAX_S)
            except Exception as exc:  # noqa: BLE001 - logged; the next try may succeed
                log.error("table follower cannot read; retrying", topic=self._on_cluster,
                          error=repr(exc), retry_in_s=delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, FOLLOW_RETRY_MAX_S)
            else:
                delay_s = FOLLOW_RETRY_S

    async def _read_new_partitions(self) -> None:
        """Read partitions added to the topic since the start from their first record: keys
        hashed there (new STOPs) would otherwise be unseen until the next start. Those read so
        far go on from where they are: read again from their start, a key would show its
        older values for a while (an opt-out undone)."""
        assert self._consumer is not None
        listed = self._consumer.partitions_for_topic(self._on_cluster) or set()
        new = sorted((self._found | {TopicPartition(self._on_cluster, p) for p in listed})
                     - set(self._partitions))
        if not new:
            return
        at = {tp: await self._consumer.position(tp) for tp in self._partitions}
        paused = self._consumer.paused()  # at a record it cannot read: stays so
        # assign() replaces the assignment and forgets positions: no await until they are back.
        self._partitions = [*self._partitions, *new]
        self._consumer.assign(self._partitions)
        self._found.difference_update(new)
        for tp, offset in at.items():
            self._consumer.seek(tp, offset)
        if paused:
            self._consumer.pause(*paused)
        await self._consumer.seek_to_beginning(*new)
        log.info("table reads partitions added to its topic", topic=self._on_cluster,
                 partitions=[tp.partition for tp in new])

    async def _poll(self, timeout_ms: int) -> None:
        assert self._consumer is not None
        try:
            batch = await self._consumer.getmany(timeout_ms=timeout_ms)
        except UnicodeDecodeError as exc:  # aiokafka parsing a header key
            raise await self._unreadable(exc) from None
        for records in batch.values():
            self._apply_all(records)
        for tp in self._partitions:
            self._positions[tp] = await self._consumer.position(tp)
        self._drop_expired()
        async with self._advanced:
            self._advanced.notify_all()

    async def _unreadable(self, exc: UnicodeDecodeError) -> UnreadableTableRecord:
        """Name the record (its partition is then left paused, at it) and say the way out.
        The other partitions go back to where the last good fetch left them: the failed one
        had moved them past records it then dropped."""
        assert self._consumer is not None
        for tp in self._partitions:
            if tp in self._positions:
                self._consumer.seek(tp, self._positions[tp])
            else:
                await self._consumer.seek_to_beginning(tp)
        found = await find_unreadable(self._consumer, self._partitions)
        where = f"a partition of {self._on_cluster}"
        if found is not None:
            where = str(found)
            self._apply_all(found.before)
            self._consumer.pause(found.partition)
        return UnreadableTableRecord(
            f"aiokafka cannot read the record at {where} (a header key that is not UTF-8, "
            f"there or before it in its producer's batch: {exc}); this table is read from "
            "its start at every start, so no worker reading it starts until that record is "
            "gone: see Troubleshooting in the README")
