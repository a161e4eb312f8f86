"""`switchboard tail`: decoded records from the real broker; a mistyped topic is an error."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions

from switchboard.records import OutRecord, cloudevent_headers
from switchboard.topics import TopicSpec, ensure_topics
from tests.integration.processes import tail
from tests.kafka_helpers import publish


@pytest.mark.parametrize("prefix", ["", "tail-install."])
async def test_tail_prints_each_record_decoded(kafka_bootstrap: str, prefix: str) -> None:
    """With a name prefix, `--topic` takes the plain name, as the other settings do."""
    topic = f"test.tail.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, partitions=1, replication_factor=1,
                        specs=(TopicSpec(prefix + topic, "test"),))
    headers = cloudevent_headers(ce_id="id-1", source="/test", ce_type="dev.test.v1",
                                 time=datetime.now(UTC))
    await publish(kafka_bootstrap, [
        OutRecord(prefix + topic, orjson.dumps({"n": n}), f"key-{n}".encode(), headers)
        for n in range(3)])

    result = await asyncio.to_thread(tail, kafka_bootstrap, "--topic", topic, "--all",
                                     "--limit", "3", prefix=prefix)
    assert result.returncode == 0, result.stderr
    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [(r["offset"], r["key"], r["value"]) for r in lines] == [
        (n, f"key-{n}", {"n": n}) for n in range(3)]
    assert all(r["topic"] == prefix + topic and r["headers"]["ce_type"] == "dev.test.v1"
               for r in lines)


async def test_tail_of_a_mistyped_topic_says_so_and_exits(kafka_bootstrap: str) -> None:
    result = await asyncio.to_thread(tail, kafka_bootstrap, "--topic", "switchboard.raw.v2")
    assert result.returncode == 2
    assert "no such topic: switchboard.raw.v2" in result.stderr
    assert "switchboard.raw.v1" in result.stderr  # and what there is instead
    assert result.stderr.rstrip().endswith("did you mean switchboard.raw.v1?")


async def test_with_a_name_prefix_a_mistyped_topic_lists_this_install_s_topics(
        kafka_bootstrap: str) -> None:
    prefix = f"tail-{uuid.uuid4().hex[:6]}."
    await ensure_topics(kafka_bootstrap, partitions=1, replication_factor=1,
                        specs=(TopicSpec(prefix + "switchboard.raw.v1", "test"),))
    result = await asyncio.to_thread(tail, kafka_bootstrap, "--topic", "switchboard.raw.v2",
                                     prefix=prefix)
    assert result.returncode == 2
    assert (f"no such topic: {prefix}switchboard.raw.v2 (the topics named {prefix}<topic> "
            "are: switchboard.raw.v1)") in result.stderr



@pytest.mark.parametrize("prefix", ["", "tail-short."])
async def test_a_short_name_of_one_of_switchboard_s_topics_suggests_that_topic(
        kafka_bootstrap: str, prefix: str) -> None:
    # `--topic raw` and `--topic dead-letter` were refused with no suggestion: too short for
    # a close match. Suggested as --topic takes it, without the install's name prefix.
    result = await asyncio.to_thread(tail, kafka_bootstrap, "--topic", "raw",
                                     "--topic", "dead-letter", prefix=prefix)
    assert result.returncode == 2
    assert f"no such topic: {prefix}raw, {prefix}dead-letter (" in result.stderr
    assert result.stderr.rstrip().endswith(
        "did you mean switchboard.raw.v1 or switchboard.dead-letter.v1?")


async def _values_within(process: asyncio.subprocess.Process, count: int, timeout_s: float
                         ) -> list[Any]:
    """Up to `count` values tail prints (the warm-up records left out), in `timeout_s` in all."""
    assert process.stdout is not None
    values: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(values) < count and (left := deadline - time.monotonic()) > 0:
        try:
            line = await asyncio.wait_for(process.stdout.readline(), left)
        except TimeoutError:
            break
        value = orjson.loads(line)["value"]
        if "warm" not in value:
            values.append(value)
    return values


@pytest.mark.parametrize("from_beginning", [False, True])
async def test_tail_follows_partitions_added_while_it_runs(kafka_bootstrap: str,
                                                           from_beginning: bool) -> None:
    """A partition added to the topic is read from its first record, and the partitions tail
    already read go on where they were: neither missed nor printed again."""
    topic = f"test.tail.grow.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, partitions=1, replication_factor=1,
                        specs=(TopicSpec(topic, "test"),))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    await producer.send_and_wait(topic, b'{"n": "before"}', partition=0)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchboard.cli", "tail", "--topic", topic,
        *(["--all"] if from_beginning else []),
        env=os.environ | {"KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap},
        stdout=asyncio.subprocess.PIPE)
    try:
        if from_beginning:
            assert await _values_within(process, 1, 60) == [{"n": "before"}]
        else:  # tail starts at the end: write until it shows a record
            assert process.stdout is not None
            for _ in range(120):
                await producer.send_and_wait(topic, b'{"warm": true}', partition=0)
                with contextlib.suppress(TimeoutError):
                    line = await asyncio.wait_for(process.stdout.readline(), 0.5)
                    assert "warm" in orjson.loads(line)["value"]
                    break
            else:
                raise AssertionError("tail printed nothing in 60 s")

        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.create_partitions({topic: NewPartitions(total_count=2)})
        finally:
            await admin.close()
        await producer.stop()
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)  # sees partition 1
        await producer.start()
        await producer.send_and_wait(topic, b'{"n": "new"}', partition=1)
        await producer.send_and_wait(topic, b'{"n": "old"}', partition=0)

        values = await _values_within(process, 3, 30)
        assert sorted(v["n"] for v in values) == ["new", "old"]
    finally:
        await producer.stop()
        process.terminate()
        await process.wait()
