"""When a broker is usable: a record produced with acks=all comes back to a consumer in a group."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Iterator

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from switchboard.clients import admin_client
from switchboard.localkafka.errors import BrokerError
from switchboard.topics import TopicSpec, ensure_topics

_READY_TOPIC = TopicSpec("switchboard.selftest.v1", "readiness round trip", partitions=1)


async def wait_until_usable(bootstrap_servers: str, timeout_s: float = 60.0) -> None:
    """Return once a record can be produced with acks=all and consumed back in a group."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    with _aiokafka_quiet():
        while time.monotonic() < deadline:
            try:
                await asyncio.wait_for(_round_trip(bootstrap_servers), max(1.0, deadline -
                                                                          time.monotonic()))
                return
            except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
                last_error = exc
                await asyncio.sleep(0.5)
    raise BrokerError(f"Kafka at {bootstrap_servers} is not usable: {last_error!r}")


@contextlib.contextmanager
def _aiokafka_quiet() -> Iterator[None]:
    """A restarted broker names itself a partition's leader a moment before it acts as one:
    the readiness record is refused (NotLeaderForPartition), which aiokafka retries but logs
    as a warning, the first line a user saw at every restart of `run` or `kafka`. Whatever
    keeps the broker from being usable is said all the same: in the BrokerError above."""
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


async def _round_trip(bootstrap_servers: str) -> None:
    """One probe. Each client is started inside its try: a start that fails or is cancelled
    (the probe given up by wait_until_usable's wait_for) is closed too, not left open, its
    metadata task running, once per probe; aiokafka's stop/close after such a start is safe."""
    await ensure_topics(bootstrap_servers, partitions=1, replication_factor=1,
                        specs=(_READY_TOPIC,))
    # The first group lookup creates the offsets topic; until it has a leader the lookup
    # fails. Done here, the wait is quiet; a consumer group would log it as an error.
    async with admin_client(bootstrap_servers, request_timeout_s=15) as admin:
        await admin.find_coordinator("switchboard-readiness")
    marker = uuid.uuid4().bytes
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers, acks="all")
    try:
        await producer.start()
        metadata = await producer.send_and_wait(_READY_TOPIC.name, marker)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    try:
        await consumer.start()
        partition = TopicPartition(_READY_TOPIC.name, metadata.partition)
        consumer.assign([partition])
        consumer.seek(partition, metadata.offset)
        record = await consumer.getone()
        if record.value != marker:
            raise BrokerError("readiness record did not come back")
    finally:
        await consumer.stop()
