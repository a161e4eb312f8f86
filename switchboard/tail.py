"""`switchboard tail`: watch what lands on the topics, for people building on top."""

from __future__ import annotations

import sys
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer

from switchboard.clients import (
    KafkaConnection,
    KafkaTarget,
    as_connection,
    kafka_options,
    stop_consumer,
)
from switchboard.topics import MESSAGE_INBOUND, MESSAGE_STATUS


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
    )
    try:
        await consumer.start()
        existing = await consumer.topics()
        missing = [topic for topic in wanted if topic not in existing]
        if missing:
            raise UnknownTopic(_unknown(connection, missing, existing))
        consumer.subscribe(wanted)
        printed = 0
        async for record in consumer:
            sys.stdout.buffer.write(orjson.dumps(decode(record)) + b"\n")
            sys.stdout.flush()
            printed += 1
            if limit is not None and printed >= limit:
                return
    finally:
        await stop_consumer(consumer)  # also one whose start failed, or whose broker is away
