"""A record aiokafka cannot read, against the real broker: a header key that is not UTF-8
(a producer of another client library may write one) made every fetch of its partition raise,
and the worker stop with a traceback naming neither partition nor offset, at every start. The
readable records before it in its partition were dropped with the failed fetch, the group left
before them: moving it past the record (README, Troubleshooting) skipped them too."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import TopicPartition

from consumers.handling import Context, Record
from consumers.runtime import RetryPolicy, UnreadableRecord, WorkerRuntime
from tests.kafka_helpers import (
    committed_offset,
    new_topic,
    produce_unreadable_to_partition_1,
)


async def test_a_record_aiokafka_cannot_read_is_named_and_the_worker_stops(
        kafka_bootstrap: str, caplog: pytest.LogCaptureFixture) -> None:
    topic = await new_topic(kafka_bootstrap, "unreadable", 2)
    await produce_unreadable_to_partition_1(kafka_bootstrap, topic)
    group = f"g-{uuid.uuid4().hex[:8]}"
    handled: list[tuple[int, int]] = []
    failed: list[int] = []

    async def handler(record: Record, ctx: Context) -> None:
        if record.partition == 1 and record.offset == 1 and not failed:
            failed.append(record.offset)  # once: retried as any record, not given back
            raise RuntimeError("not yet")
        handled.append((record.partition, record.offset))

    runtime = WorkerRuntime(name="test", kafka=kafka_bootstrap, topics=[topic],
                            handler=handler, group_id=group, retry=RetryPolicy(base_delay_s=0.05))
    with pytest.raises(UnreadableRecord) as stopped:
        await asyncio.wait_for(runtime.run(), 60)

    assert str(stopped.value).startswith(
        f"aiokafka cannot read the record at {topic} partition 1 offset 2 (a header key that "
        "is not UTF-8, there or before it in its producer's batch: 'utf-8' codec can't decode")
    assert str(stopped.value).endswith(f"no worker of the group {group} gets past it: see "
                                       "Troubleshooting in the README")
    assert "record cannot be read; stopping" in caplog.text
    # The readable records before it in its partition (the fetch that failed held them) are
    # handled, a failure retried, and committed: the group stands exactly at it, and moving
    # past it (offset + 1) skips it alone. Nothing past it was handled, or committed.
    assert failed == [1]
    assert sorted(offset for partition, offset in handled if partition == 1) == [0, 1]
    assert await committed_offset(kafka_bootstrap, group, TopicPartition(topic, 1)) == 2


async def test_a_stop_meanwhile_leaves_the_readable_records_before_it_and_says_from_where(
        kafka_bootstrap: str, caplog: pytest.LogCaptureFixture) -> None:
    topic = await new_topic(kafka_bootstrap, "unreadable", 2)
    await produce_unreadable_to_partition_1(kafka_bootstrap, topic)
    group = f"g-{uuid.uuid4().hex[:8]}"
    handled: list[int] = []

    async def handler(record: Record, ctx: Context) -> None:
        if record.partition == 1:
            runtime.stop()  # offset 0, while it is handled: offset 1 (same key) waits behind
            handled.append(record.offset)

    runtime = WorkerRuntime(name="test", kafka=kafka_bootstrap, topics=[topic],
                            handler=handler, group_id=group)
    with pytest.raises(UnreadableRecord) as stopped:
        await asyncio.wait_for(runtime.run(), 60)

    assert handled == [0]
    assert f"{topic} partition 1 offset 2 (a header key that is not UTF-8" in str(stopped.value)
    assert ("; the readable records before it from offset 1 were not handled (the worker "
            "stopped meanwhile): the group stands before them, and the next start handles "
            "them; no worker of the group") in str(stopped.value)
    assert "'unhandled_from': 1" in caplog.text
    assert await committed_offset(kafka_bootstrap, group, TopicPartition(topic, 1)) == 1
