"""A record aiokafka cannot read, against the real broker: a header key that is not UTF-8
(a producer of another client library may write one) made every fetch of its partition raise,
and the worker stop with a traceback naming neither partition nor offset, at every start."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from consumers.handling import Context, Record
from consumers.runtime import UnreadableRecord, WorkerRuntime
from switchboard.topics import TopicSpec, ensure_topics
from tests.kafka_helpers import produce_unreadable_to_partition_1


async def test_a_record_aiokafka_cannot_read_is_named_and_the_worker_stops(
        kafka_bootstrap: str, caplog: pytest.LogCaptureFixture) -> None:
    topic = f"test.unreadable.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, partitions=2, replication_factor=1,
                        specs=(TopicSpec(topic, "test"),))
    await produce_unreadable_to_partition_1(kafka_bootstrap, topic)
    group = f"g-{uuid.uuid4().hex[:8]}"
    handled: list[tuple[int, int]] = []

    async def handler(record: Record, ctx: Context) -> None:
        handled.append((record.partition, record.offset))

    runtime = WorkerRuntime(name="test", kafka=kafka_bootstrap, topics=[topic],
                            handler=handler, group_id=group)
    with pytest.raises(UnreadableRecord) as stopped:
        await asyncio.wait_for(runtime.run(), 60)

    assert str(stopped.value).startswith(
        f"aiokafka cannot read the record at {topic} partition 1 offset 2 (a header key that "
        "is not UTF-8, there or before it in its producer's batch: 'utf-8' codec can't decode")
    assert str(stopped.value).endswith(f"no worker of the group {group} gets past it: see "
                                       "Troubleshooting in the README")
    assert "record cannot be read; stopping" in caplog.text
    # Nothing past it was handled, or committed: the next run starts before it again.
    assert all(offset < 2 for _, offset in handled)
    reader = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group,
                              enable_auto_commit=False)
    await reader.start()
    try:
        assert (await reader.committed(TopicPartition(topic, 1)) or 0) <= 2
    finally:
        await reader.stop()
