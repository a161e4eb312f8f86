"""`switchboard replay --reason` against the real broker: of a worker's dead letters of two
reasons, once one is fixed only the letters of that reason are put back on their topic (those
of the other would fail again, or be answered twice), and the letters it leaves out count
neither as failing nor as skipped."""

from __future__ import annotations

import asyncio
import uuid

import orjson
from aiokafka import AIOKafkaProducer

from consumers.handling import Context, Record
from consumers.runtime import RetryPolicy, WorkerRuntime
from switchboard.topics import DEAD_LETTER, TopicSpec, ensure_topics
from tests.integration.processes import replay
from tests.integration.runtimes import run_until
from tests.kafka_helpers import TopicWatcher, collect_until

RECORDS = [b'{"kind": "report"}', b'{"kind": "inbound"}', b'{"kind": "report"}']


async def test_only_the_letters_of_the_given_reason_are_put_back(kafka_bootstrap: str) -> None:
    topic = f"test.replay.reason.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, partitions=1, replication_factor=1,
                        specs=(TopicSpec(topic, "test"), DEAD_LETTER))
    name = f"bot-reason-{uuid.uuid4().hex[:8]}"
    handled: list[bytes] = []
    all_failed = asyncio.Event()

    async def broken(record: Record, ctx: Context) -> None:
        """Two bugs: a report's field it does not know, and an inbound message's."""
        handled.append(record.value)
        if len(handled) == len(RECORDS):
            all_failed.set()
        if orjson.loads(record.value)["kind"] == "report":
            raise KeyError("doneAt")
        raise ValueError("inbound message has no sender")

    async with TopicWatcher(kafka_bootstrap, (DEAD_LETTER.name,)) as letters:
        before = await letters.snapshot()
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            for value in RECORDS:
                await producer.send_and_wait(topic, value)
        finally:
            await producer.stop()
        runtime = WorkerRuntime(name=name, kafka=kafka_bootstrap, topics=[topic],
                                handler=broken, group_id=f"g-{name}",
                                retry=RetryPolicy(max_attempts=1, base_delay_s=0.01))
        await run_until(runtime, all_failed)
        found = await collect_until(letters, before, lambda found: len(
            [r for r in found.get(DEAD_LETTER.name, [])
             if orjson.loads(r.value)["stage"] == f"worker:{name}"]) == len(RECORDS))
    reasons = [orjson.loads(r.value)["reason"] for r in found[DEAD_LETTER.name]
               if orjson.loads(r.value)["stage"] == f"worker:{name}"]
    assert sorted(reasons) == ["KeyError: 'doneAt'", "KeyError: 'doneAt'",
                               "ValueError: inbound message has no sender"]

    async with TopicWatcher(kafka_bootstrap, (topic,)) as watcher:
        start = await watcher.snapshot()
        dry_code, dry_lines, dry_err = await replay(
            kafka_bootstrap, "--stage", name, "--reason", "keyerror: 'DONEAT'", "--dry-run")
        code, lines, err = await replay(kafka_bootstrap, "--stage", name, "--reason",
                                        "keyerror: 'DONEAT'")
        back = (await watcher.records_since(start)).get(topic, [])

    assert dry_code == 0, dry_err
    assert [(line["outcome"], line["letter_reason"]) for line in dry_lines] == [
        ("replayable", "KeyError: 'doneAt'")] * 2
    assert code == 0, err  # the other letter was not selected: not "skipped", no exit 3
    assert "replayed 2 of 2 (2 records); 0 still fail, 0 skipped" in err
    assert [(line["outcome"], line["letter_reason"]) for line in lines] == [
        ("replayed", "KeyError: 'doneAt'")] * 2
    assert [r.value for r in back] == [b'{"kind": "report"}'] * 2
