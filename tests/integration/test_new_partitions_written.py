"""A topic that gains partitions while producers and workers run (kafka-topics.sh --alter
--partitions), against the real broker: producers wrote to the partitions they knew of, and a
worker group read those only, for up to 5 minutes (aiokafka's metadata refresh), while the
tables read a new partition within NEW_PARTITIONS_WITHIN_S. A key written by producers noticing
minutes apart landed in two partitions, commands in a new partition waited minutes for the
sender, and a bot (which started a partition it had no commit for at its end) skipped what was
written to a new partition before its group took it on (test_worker_start_position.py)."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import murmur2

from consumers.handling import Context, Record
from consumers.runtime import WorkerRuntime
from switchboard.producer import NEW_PARTITIONS_WITHIN_S, DurableProducer
from switchboard.records import OutRecord
from tests.integration.runtimes import run_until
from tests.kafka_helpers import add_partitions, new_topic, produce_to_partition

PARTITIONS = 4


def _key_for(partition: int) -> bytes:
    """A key the default partitioner puts in `partition` of PARTITIONS (and in 0 of 1)."""
    for n in range(1000):
        key = f"contact-{n}".encode()
        if (murmur2(key) & 0x7FFFFFFF) % PARTITIONS == partition:
            return key
    raise AssertionError("no key found")


async def _ends(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
        return {tp.partition: end for tp, end in ends.items()}
    finally:
        await consumer.stop()


async def test_a_producer_writes_to_partitions_added_to_its_topic_within_the_bound(
        kafka_bootstrap: str) -> None:
    topic = await new_topic(kafka_bootstrap, "new-partitions", 1)
    key = _key_for(PARTITIONS - 1)
    producer = DurableProducer(kafka_bootstrap, timeout_s=10)
    await producer.start()
    try:
        await producer.publish([OutRecord(topic, b"before", key)])
        await add_partitions(kafka_bootstrap, topic, PARTITIONS)
        async with asyncio.timeout(NEW_PARTITIONS_WITHIN_S + 10):
            while (await _ends(kafka_bootstrap, topic))[PARTITIONS - 1] == 0:
                await producer.publish([OutRecord(topic, b"after", key)])
                await asyncio.sleep(0.5)
        # Each refresh asks for the topics it writes, not for every topic of the cluster.
        assert producer._producer is not None
        assert producer._producer.client._topics == {topic}
    finally:
        await producer.stop()
    assert (await _ends(kafka_bootstrap, topic))[0] >= 1  # the first, before


async def test_a_worker_reads_a_partition_added_to_its_topic_within_the_bound(
        kafka_bootstrap: str) -> None:
    topic = await new_topic(kafka_bootstrap, "new-partitions", 1)
    handled: list[tuple[int, bytes]] = []
    done = asyncio.Event()

    async def handler(record: Record, ctx: Context) -> None:
        handled.append((record.partition, record.value))
        if record.partition == 1:
            done.set()

    runtime = WorkerRuntime(name=f"new-partitions-{uuid.uuid4().hex[:8]}",
                            kafka=kafka_bootstrap, topics=[topic], handler=handler)

    async def added_once_running() -> None:
        await asyncio.wait_for(runtime.ready.wait(), 30)
        await add_partitions(kafka_bootstrap, topic, 2)
        await produce_to_partition(kafka_bootstrap, topic, 1, (b"k", b"new"))

    adding = asyncio.create_task(added_once_running())
    try:
        # The group takes the partition on (a rebalance), within the bound.
        await run_until(runtime, done, timeout_s=30 + NEW_PARTITIONS_WITHIN_S + 15)
    finally:
        await adding
    assert handled == [(1, b"new")]
