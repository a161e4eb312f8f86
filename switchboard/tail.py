"""`switchboard tail`: watch what lands on the topics, for people building on top."""

from __future__ import annotations

import sys
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from switchboard.clients import (
    KafkaConnection,
    KafkaTarget,
    as_connection,
    kafka_options,
    stop_consumer,
)
from switchboard.topics import MESSAGE_INBOUND, MESSAGE_STATUS, topic_partitions


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "replace")


def decode(record: Any) -> dict[str, Any]:
    """A record as one JSON-friendly dict: where it is, its key, its CloudEvents headers, value.

    A value or a header may be null (a tombstone on the compacted opt-out and sent topics; a
    header without a value): shown as null, so tail does not stop at such a record."""
    value: Any = None
    if record.value is not None:
        try:
            value = orjson.loads(record.value)
            orjson.dumps(value)  # orjson reads 1,024 levels of nesting but writes only 254
        except (orjson.JSONDecodeError, orjson.JSONEncodeError):
            value = _text(record.value)
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "key": _text(record.key),
        "headers": {k: _text(v) for k, v in record.headers or ()},
        "value": value,
    }


class UnknownTopic(ValueError):
    """A topic that is not in the cluster: aiokafka would wait for it forever, logging."""


def _unknown(connection: KafkaConnection, missing: list[str], existing: set[str]) -> str:
    """Name what is missing, and what can be given instead: with a name prefix, the topics of
    this install, as `--topic` takes them (without the prefix)."""
    prefix = connection.name_prefix
    known = sorted(connection.plain_topic(t) for t in existing
                   if t.startswith(prefix) and not t.startswith("__"))
    where = f"the topics named {prefix}<topic> are: " if prefix else "the cluster has: "
    return f"no such topic: {', '.join(missing)} ({where}{', '.join(known) or 'none'})"


# How often tail asks the cluster for the topics' partitions: one added while it runs is
# read from its first record within this long.
PARTITIONS_CHECK_MS = 5000


async def tail(kafka: KafkaTarget, topics: list[str] | None, *, from_beginning: bool = False,
               limit: int | None = None) -> None:
    """Print the records of `topics` (plain names, as in the docs; the connection's name
    prefix is added) as JSON lines."""
    connection = as_connection(kafka)
    plain = topics or [MESSAGE_INBOUND.name, MESSAGE_STATUS.name]
    wanted = [connection.topic(topic) for topic in plain]
    consumer = AIOKafkaConsumer(
        **kafka_options(kafka, "tail"),
        auto_offset_reset="earliest" if from_beginning else "latest",
        enable_auto_commit=False,
        metadata_max_age_ms=PARTITIONS_CHECK_MS,
    )
    try:
        await consumer.start()
        existing = await consumer.topics()
        missing = [topic for topic in wanted if topic not in existing]
        if missing:
            raise UnknownTopic(_unknown(connection, missing, existing))
        # Assigned, not subscribed: without a group, aiokafka's subscription notices a new
        # partition only at its 5-minute metadata refresh, then starts every partition over
        # (from the end: the new one's records so far missed; --all: the topic printed again).
        # Asked of the cluster: the consumer's own metadata has no topics until it is told some.
        consumer.assign([tp for topic in plain for tp in await topic_partitions(kafka, topic)])
        printed = 0
        while True:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    sys.stdout.buffer.write(orjson.dumps(decode(record)) + b"\n")
                    printed += 1
                    if limit is not None and printed >= limit:
                        sys.stdout.flush()
                        return
            sys.stdout.flush()
            await _follow_new_partitions(consumer, wanted)
    finally:
        await stop_consumer(consumer)  # also one whose start failed, or whose broker is away


def _partitions(consumer: AIOKafkaConsumer, topics: list[str]) -> set[TopicPartition]:
    """The topics' partitions as the consumer's latest metadata has them."""
    return {TopicPartition(topic, p) for topic in topics
            for p in consumer.partitions_for_topic(topic) or ()}


async def _follow_new_partitions(consumer: AIOKafkaConsumer, topics: list[str]) -> None:
    """Add the partitions the topics gained since the last look, read from their first record
    (all of it was written while tail ran); the others go on where they were."""
    assigned = consumer.assignment()
    added = _partitions(consumer, topics) - assigned
    if not added:
        return
    # assign() starts every partition afresh: carry over the positions (of what was printed).
    positions = {tp: await consumer.position(tp) for tp in assigned}
    consumer.assign(list(assigned | added))
    for tp, offset in positions.items():
        consumer.seek(tp, offset)
    await consumer.seek_to_beginning(*added)
