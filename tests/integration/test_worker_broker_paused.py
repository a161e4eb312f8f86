"""A worker while its broker answers nothing for a while (paused: connections open, nothing
answered, as in a network partition or a JVM's long pause), then answers again: it says so,
once, and /readyz says it; once the broker answers it goes on by itself, and every record is
handled and its result written, none lost."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from consumers import kafka_watch
from consumers.handling import Context, Record
from consumers.runtime import WorkerRuntime
from switchboard.records import OutRecord
from switchboard.topics import TopicSpec, ensure_topics
from tests.integration.processes import own_broker, paused

SILENT_S = 5.0
PAUSED_S = 30.0
RECORDS = 60


def _events(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.msg.get("event", "") for r in caplog.records if isinstance(r.msg, dict)]


async def _results(bootstrap: str, topic: str, want: int, timeout_s: float) -> Counter[bytes]:
    """The keys of the results written, read until `want` distinct ones or `timeout_s`."""
    seen: Counter[bytes] = Counter()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap,
                                auto_offset_reset="earliest")
    await consumer.start()
    try:
        deadline = time.monotonic() + timeout_s
        while len(seen) < want and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                seen.update(record.key for record in records)
        # What else was written is written by now: another second finds a double.
        for records in (await consumer.getmany(timeout_ms=1000)).values():
            seen.update(record.key for record in records)
    finally:
        await consumer.stop()
    return seen


async def test_a_paused_broker_is_said_once_and_the_worker_goes_on_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(kafka_watch, "KAFKA_SILENT_AFTER_S", SILENT_S)
    caplog.set_level("INFO")
    async with own_broker(tmp_path) as broker:
        assert broker.process is not None
        bootstrap = broker.bootstrap_servers
        commands, results = (f"test.paused.{uuid.uuid4().hex[:8]}" for _ in range(2))
        await ensure_topics(bootstrap, partitions=2, replication_factor=1,
                            specs=(TopicSpec(commands, "test"), TopicSpec(results, "test")))
        handled: Counter[bytes] = Counter()
        started = asyncio.Event()

        async def handler(record: Record, ctx: Context) -> None:
            assert record.key is not None
            handled[record.key] += 1
            started.set()
            await asyncio.sleep(3)  # still handling as the broker pauses
            await ctx.publish([OutRecord(topic=results, key=record.key, value=b"done")])

        runtime = WorkerRuntime(name="test", kafka=bootstrap, topics=[commands],
                                handler=handler, group_id=f"g-{uuid.uuid4().hex[:8]}")
        running = asyncio.create_task(runtime.run())
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        timeline: list[tuple[float, str | None]] = []
        try:
            await asyncio.wait_for(runtime.ready.wait(), 60)
            for n in range(RECORDS // 2):
                await producer.send(commands, key=f"k{n}".encode(), value=b"c")
            await producer.flush()
            await asyncio.wait_for(started.wait(), 30)
            began = time.monotonic()
            with paused(broker):
                while time.monotonic() - began < PAUSED_S:
                    timeline.append((time.monotonic() - began, runtime.problem()))
                    await asyncio.sleep(0.5)
            resumed = time.monotonic()
            for _ in range(180):  # bounded: 90 s
                if runtime.problem() is None:
                    break
                await asyncio.sleep(0.5)
            ready_after_s = time.monotonic() - resumed
            for n in range(RECORDS // 2, RECORDS):
                await producer.send(commands, key=f"k{n}".encode(), value=b"c")
            await producer.flush()
            written = await _results(bootstrap, results, RECORDS, 90)
        finally:
            await producer.stop()
            runtime.stop()
            await asyncio.wait_for(running, 60)
        unready = [t for t, problem in timeline
                   if (problem or "").startswith("Kafka unreachable: no fetch answered for ")]
        assert unready and unready[0] < SILENT_S + 10, timeline
        assert all(problem is not None for t, problem in timeline if t > SILENT_S + 10), timeline
        assert ready_after_s < 60, f"not ready {ready_after_s:.0f} s after the broker answered"
        said = _events(caplog)
        assert said.count("kafka is not answering the worker") == 1, Counter(said)
        assert said.count("kafka answers the worker again") == 1, Counter(said)
        # At least once: the records in flight as the broker paused failed to publish their
        # results, were retried, and came back at the rebalance the pause caused (the member
        # had missed its session): a handler makes its effects idempotent (the sender's
        # ledger, the bots' event ids).
        assert set(written) == {f"k{n}".encode() for n in range(RECORDS)}, sorted(written)
