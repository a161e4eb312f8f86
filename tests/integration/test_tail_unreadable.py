"""`switchboard tail` against records aiokafka cannot read, and topics not created yet, on the
real broker. A record with a header key that is not UTF-8 ended tail in a UnicodeDecodeError
traceback (at every run with --all); a topic of Switchboard's own not created yet (tail started
before `run`) was refused as a typo."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

import orjson
from aiokafka import AIOKafkaProducer

from switchboard.topics import OUTBOUND_RESULTS, TopicSpec, ensure_topics
from tests.integration.processes import tail
from tests.kafka_helpers import produce_to_partition, produce_unreadable_to_partition_1


async def test_a_record_aiokafka_cannot_read_is_skipped_with_a_warning(
        kafka_bootstrap: str) -> None:
    topic = f"test.tail.unreadable.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, partitions=2, replication_factor=1,
                        specs=(TopicSpec(topic, "test"),))
    await produce_unreadable_to_partition_1(kafka_bootstrap, topic)  # 2 unreadable, in a batch 1-3
    await produce_to_partition(kafka_bootstrap, topic, 0, (b"other", b"10"))

    result = await asyncio.to_thread(tail, kafka_bootstrap, "--topic", topic, "--all",
                                     "--limit", "4")

    assert result.returncode == 0, result.stderr
    printed = sorted((r["partition"], r["offset"], r["value"])
                     for r in map(orjson.loads, result.stdout.splitlines()))
    # Offset 1 is before the record in its batch; 3 after it, which aiokafka cannot read.
    assert printed == [(0, 0, 10), (1, 0, 0), (1, 1, 1), (1, 4, 4)]
    [warning] = [line for line in result.stderr.splitlines() if "skipped" in line]
    assert warning.startswith(
        f"warning: skipped {topic} partition 1 offsets 2-3: aiokafka cannot read them (a "
        "header key that is not UTF-8")
    assert warning.endswith(f"kcat -C -t {topic} -p 1 -o 2 -c 2 -J")
    assert "Traceback" not in result.stderr


async def test_tail_waits_for_one_of_switchboards_topics_to_be_created(
        kafka_bootstrap: str) -> None:
    prefix = f"tail-wait-{uuid.uuid4().hex[:6]}."  # an install whose topics are not made yet
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchboard.cli", "tail", "--topic", OUTBOUND_RESULTS.name,
        "--limit", "1",
        env=os.environ | {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                          "SWITCHBOARD_KAFKA_NAME_PREFIX": prefix},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert process.stderr is not None
        said = await asyncio.wait_for(process.stderr.readline(), 60)
        assert said.decode().startswith(
            f"waiting for topic {prefix}{OUTBOUND_RESULTS.name} to be created")
        topic = prefix + OUTBOUND_RESULTS.name
        await ensure_topics(kafka_bootstrap, partitions=1, replication_factor=1,
                            specs=(TopicSpec(topic, "test"),))
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:  # written before tail has seen the topic: shown all the same
            await producer.send_and_wait(topic, b'{"first": true}', partition=0)
        finally:
            await producer.stop()
        stdout, _ = await asyncio.wait_for(process.communicate(), 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0
    assert orjson.loads(stdout)["value"] == {"first": True}
