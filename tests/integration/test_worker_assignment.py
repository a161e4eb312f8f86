"""The worker runtime's hooks for newly assigned partitions, against the real broker: aiokafka
starts fetching a new assignment while its listener runs, so no record may start until they
are done."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaProducer, TopicPartition

from consumers.handling import Context, Record
from consumers.runtime import WorkerRuntime
from switchboard.topics import TopicSpec, ensure_topics


async def test_no_record_starts_before_the_new_partitions_hooks_are_done(
        kafka_bootstrap: str) -> None:
    # The sender's hook catches its ledger up with what the partition's previous owner sent
    # (up to half a second, the ledger follower's fetch wait): a command handled before that
    # could be sent a second time.
    topic = f"test.assign.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, partitions=1, replication_factor=1,
                        specs=(TopicSpec(topic, "test"),))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for n in range(5):
            await producer.send_and_wait(topic, str(n).encode(), key=b"k")
    finally:
        await producer.stop()

    caught_up = False
    early: list[int] = []
    done = asyncio.Event()

    async def catch_up(assigned: list[TopicPartition]) -> None:
        nonlocal caught_up
        await asyncio.sleep(2)  # a slow catch-up: the fetcher has long answered meanwhile
        caught_up = True

    async def handler(record: Record, ctx: Context) -> None:
        if not caught_up:
            early.append(record.offset)
        if record.offset == 4:
            done.set()

    runtime = WorkerRuntime(name="test", kafka=kafka_bootstrap, topics=[topic],
                            handler=handler, group_id=f"g-{uuid.uuid4().hex[:8]}")
    runtime.on_assigned.append(catch_up)
    running = asyncio.create_task(runtime.run())
    try:
        await asyncio.wait_for(done.wait(), 60)
    finally:
        runtime.stop()
        await asyncio.wait_for(running, 30)
    assert early == [], "records handled before the hook for their partition was done"
