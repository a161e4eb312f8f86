"""Reading a window of a topic's records once, to an end fixed at the start.

Tools that look back (`switchboard replay`) read what a topic held when they started and then
stop, however fast new records arrive; a consumer group would read on forever.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Mapping
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from switchboard.clients import (
    KafkaTarget,
    as_connection,
    kafka_options,
    stop_consumer,
    topic_name,
)
from switchboard.kafka_settings import BOOTSTRAP_ENV
from switchboard.topics import topic_partitions

Consumed: TypeAlias = "ConsumerRecord[bytes, bytes]"
# Waiting this long for a record below a partition's end means it is not coming (a broker
# that stopped answering); it is not how long the caller may take between records.
STALL_TIMEOUT_S = 30.0
# The setting that puts a prefix before every topic name (switchboard.settings).
PREFIX_ENV = "SWITCHBOARD_KAFKA_NAME_PREFIX"


class WindowError(Exception):
    """The window cannot be read (a topic missing, a partition that stopped answering)."""


def missing_topic(kafka: KafkaTarget, topic: str) -> str:
    """Why `topic` may be missing, for the user to check: not on this cluster, not under this
    prefix, or not created yet ("does not exist" alone left them guessing which)."""
    connection = as_connection(kafka)
    prefix = repr(connection.name_prefix) if connection.name_prefix else "unset"
    return (f"topic {connection.topic(topic)} does not exist on the cluster at "
            f"{connection.bootstrap_servers}: is {BOOTSTRAP_ENV} the cluster Switchboard runs "
            f"on, and {PREFIX_ENV} ({prefix}) the one its services use? Else its topics are "
            f"not created yet: serve, run, kafka and worker create them at start-up, unless "
            f"SWITCHBOARD_CREATE_TOPICS=false")


async def read_window(kafka: KafkaTarget, topic: str, *, role: str, since_ms: int | None,
                      until_ms: int | None, after: Mapping[int, int] | None = None
                      ) -> AsyncGenerator[Consumed, None]:
    """The topic's records with a timestamp from `since_ms` (None: the oldest kept) to
    `until_ms` (None: any), up to each partition's end when this started; in a partition
    `after` names, only those past its offset (where a stopped read got to). Use it with
    `contextlib.aclosing`, so its consumer stops as soon as the caller does."""
    after = after or {}
    partitions = await topic_partitions(kafka, topic)
    if not partitions:
        raise WindowError(missing_topic(kafka, topic))
    if unknown := sorted(set(after) - {tp.partition for tp in partitions}):
        # Offsets of another topic (or cluster): read as this one's, they would skip records.
        raise WindowError(f"--after names partitions {', '.join(map(str, unknown))} that "
                          f"{topic_name(kafka, topic)} does not have (it has {len(partitions)})")
    # earliest: if retention removes the start before it is fetched, go on from the oldest
    # left instead of jumping to the end and reading nothing.
    consumer = AIOKafkaConsumer(**kafka_options(kafka, role), enable_auto_commit=False,
                                auto_offset_reset="earliest")
    try:
        await consumer.start()
        consumer.assign(partitions)
        ends: dict[TopicPartition, int] = await consumer.end_offsets(partitions)
        if since_ms is None:
            starts: dict[TopicPartition, int] = await consumer.beginning_offsets(partitions)
        else:
            found = await consumer.offsets_for_times({tp: since_ms for tp in partitions})
            starts = {tp: ends[tp] if at is None else at.offset for tp, at in found.items()}
        starts = {tp: max(start, after.get(tp.partition, -1) + 1) for tp, start in starts.items()}
        remaining = {tp: ends[tp] for tp in partitions if starts[tp] < ends[tp]}
        for tp in remaining:
            consumer.seek(tp, starts[tp])
        idle_s = 0.0
        while remaining:
            asked = time.monotonic()
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=500)
            idle_s = 0.0 if batch else idle_s + time.monotonic() - asked
            if idle_s > STALL_TIMEOUT_S:
                raise WindowError(f"{topic_name(kafka, topic)} gave no records for "
                                  f"{STALL_TIMEOUT_S:.0f}s before the end of partitions "
                                  f"{', '.join(str(tp.partition) for tp in remaining)}")
            for tp, records in batch.items():
                end = remaining.get(tp, 0)
                for record in records:
                    # A producer's clock sets a record's time: later offsets can be earlier.
                    if record.offset < end and (since_ms is None or record.timestamp >= since_ms) \
                            and (until_ms is None or record.timestamp <= until_ms):
                        yield record
            for tp in list(remaining):
                if await consumer.position(tp) >= remaining[tp]:
                    del remaining[tp]
    finally:
        # With the broker away (a stall above) aiokafka's own stop raises CancelledError,
        # which would take the place of the WindowError that says what happened.
        await stop_consumer(consumer)
