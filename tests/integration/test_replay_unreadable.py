"""`switchboard replay` meeting a record aiokafka cannot read (a header key that is not UTF-8),
against the real broker: it ended in a UnicodeDecodeError traceback naming no record."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaProducer

from switchboard.topics import DEAD_LETTER, TopicSpec, ensure_topics
from tests.integration.processes import replay
from tests.kafka_helpers import produce_unreadable_to_partition_1


async def test_replay_names_the_record_it_cannot_read_and_exits_1(kafka_bootstrap: str) -> None:
    prefix = f"replay-unreadable-{uuid.uuid4().hex[:6]}."
    topic = prefix + DEAD_LETTER.name
    await ensure_topics(kafka_bootstrap, partitions=2, replication_factor=1,
                        specs=(TopicSpec(topic, "test"),))
    await produce_unreadable_to_partition_1(kafka_bootstrap, topic)  # 2 unreadable, in a batch 1-3

    code, lines, stderr = await replay(kafka_bootstrap, "--dry-run", since=None, prefix=prefix)

    assert code == 1, stderr
    assert lines == []  # its records are not letters anyway
    [said] = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert said.startswith(
        f"error: aiokafka cannot read the record at {topic} partition 1 offset 2 (a header key "
        "that is not UTF-8, there or before it in its producer's batch: 'utf-8' codec can't")
    assert said.endswith(f"kcat -C -t {topic} -p 1 -o 2 -c 1 -J")
    assert "Traceback" not in stderr


async def test_a_record_past_the_first_fetch_is_found_too(kafka_bootstrap: str) -> None:
    """Two mebibytes into its partition: found wherever it is, not only in the first fetch."""
    prefix = f"replay-unreadable-{uuid.uuid4().hex[:6]}."
    topic = prefix + DEAD_LETTER.name
    await ensure_topics(kafka_bootstrap, partitions=2, replication_factor=1,
                        specs=(TopicSpec(topic, "test"),))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for _ in range(2048):
            await producer.send(topic, b"x" * 1024, partition=1)  # not letters: left alone
        await producer.flush()
    finally:
        await producer.stop()
    await produce_unreadable_to_partition_1(kafka_bootstrap, topic)

    code, _, stderr = await replay(kafka_bootstrap, "--dry-run", since=None, prefix=prefix)

    assert code == 1, stderr
    assert f"at {topic} partition 1 offset 2050 (a header key" in stderr
