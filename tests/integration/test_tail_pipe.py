"""`switchboard tail | head -1`: the reader going away ends tail quietly, as SIGPIPE would."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid

from aiokafka import AIOKafkaProducer

from switchboard.topics import TopicSpec, ensure_topics


async def test_a_reader_that_goes_away_ends_tail_without_a_traceback(
        kafka_bootstrap: str) -> None:
    topic = f"test.tail.pipe.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, partitions=1, replication_factor=1,
                        specs=(TopicSpec(topic, "test"),))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for n in range(3):
            await producer.send_and_wait(topic, b'{"n": %d}' % n, partition=0)
    finally:
        await producer.stop()
    read, write = os.pipe()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchboard.cli", "tail", "--topic", topic, "--all",
        env=os.environ | {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
        stdout=write, stderr=asyncio.subprocess.PIPE)
    os.close(write)
    with os.fdopen(read, "rb") as reader:
        first = await asyncio.to_thread(reader.readline)
    assert b'"n":0' in first  # and the reader is gone
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 141, stderr
    assert b"Traceback" not in stderr and b"Exception ignored" not in stderr, stderr
