"""A topic deleted under a running worker, on the real broker: Kafka answers the worker's commit
of it with UNKNOWN_TOPIC_OR_PARTITION, which aiokafka retries every 100 ms without end. That
commit held every later one (the worker's other topics were committed no more until a
restart), /readyz said `Kafka unreachable` for good, and aiokafka logged each retry. Now the
commit is given up, said by Kafka's answer, the other topics are committed again, and
aiokafka's repeated line is logged once."""

from __future__ import annotations

import asyncio
import time
import uuid

import orjson
import pytest
from aiokafka import TopicPartition

from consumers import kafka_watch
from consumers.handling import Context, Record
from consumers.runtime import WorkerRuntime
from switchboard.logs import configure_logging
from tests.kafka_helpers import committed_offset, delete_topic, new_topic, produce_to_partition

SILENT_S = 5.0
COMMITTED_WITHIN_S = 60.0


async def test_a_topic_deleted_under_a_worker_leaves_its_other_topics_committed(
        kafka_bootstrap: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_watch, "KAFKA_SILENT_AFTER_S", SILENT_S)
    configure_logging("INFO", "json")
    doomed = await new_topic(kafka_bootstrap, "doomed", 1)
    kept = TopicPartition(await new_topic(kafka_bootstrap, "kept", 1), 0)
    group = f"g-deleted-{uuid.uuid4().hex[:8]}"
    handling, deleted = asyncio.Event(), asyncio.Event()

    async def handler(record: Record, ctx: Context) -> None:
        if record.topic == doomed:  # done once its topic is gone: its commit names it
            handling.set()
            await deleted.wait()

    runtime = WorkerRuntime(name="test-deleted", kafka=kafka_bootstrap,
                            topics=[doomed, kept.topic], handler=handler, group_id=group)
    running = asyncio.create_task(runtime.run())
    problems: set[str | None] = set()
    try:
        await produce_to_partition(kafka_bootstrap, doomed, 0, (b"k", b"v"))
        await asyncio.wait_for(handling.wait(), 60)
        await delete_topic(kafka_bootstrap, doomed)
        deleted.set()
        await produce_to_partition(kafka_bootstrap, kept.topic, 0, (b"k", b"v"))

        deadline = time.monotonic() + COMMITTED_WITHIN_S
        while (committed := await committed_offset(kafka_bootstrap, group, kept)) != 1 \
                and time.monotonic() < deadline:
            problems.add(runtime.problem())
            await asyncio.sleep(0.5)
        assert committed == 1, f"the other topic's record not committed; /readyz: {problems}"
        # Ready from here on: nothing of the deleted topic is left to commit.
        for _ in range(int(2 * SILENT_S / 0.5)):
            assert runtime.problem() is None
            await asyncio.sleep(0.5)
    finally:
        runtime.stop()
        await asyncio.wait_for(running, 60)

    # While the commit was out, /readyz said Kafka's answer, if anything, not Kafka away (a
    # rebalance whose assignment still had the deleted topic may leave the new partitions
    # unready for a moment: consumers.positions asks for its committed offsets, unanswered).
    assert not [p for p in problems if p is not None and p.startswith("Kafka unreachable")]
    lines = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()
             if line.startswith("{")]
    [refused] = [line for line in lines if line["event"] == "commit failed"
                 and line["error_type"] == "UnknownTopicOrPartitionError"]  # was TimeoutError
    assert doomed in refused["error"]
    retried = [line for line in lines if line["event"].startswith("OffsetCommit failed")]
    assert len(retried) == 1, retried  # the first of some fifty retries, not each
