"""A worker's readiness against a real broker: ready while Kafka answers its fetches, also
with no records to read; not ready once Kafka has been away for long, and ready again once
it is back; so does a member with no partition (more members than partitions), which has
nothing to fetch or commit."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from consumers import kafka_watch
from consumers.handling import Context, Record
from consumers.runtime import WorkerRuntime
from switchboard.topics import TopicSpec, ensure_topics
from tests.integration.processes import own_broker, until

SILENT_S = 5.0


async def _ignore(record: Record, ctx: Context) -> None:
    return None


async def test_readiness_follows_kafka_also_for_an_idle_member(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_watch, "KAFKA_SILENT_AFTER_S", SILENT_S)
    async with own_broker(tmp_path) as broker:
        bootstrap = broker.bootstrap_servers
        topic = f"test.readiness.{uuid.uuid4().hex[:8]}"
        group = f"g-{uuid.uuid4().hex[:8]}"
        await ensure_topics(bootstrap, partitions=1, replication_factor=1,
                            specs=(TopicSpec(topic, "test"),))
        busy, idle = (WorkerRuntime(name=f"test-{n}", kafka=bootstrap, topics=[topic],
                                    handler=_ignore, group_id=group) for n in (1, 2))
        running = [asyncio.create_task(busy.run())]
        try:
            await asyncio.wait_for(busy.ready.wait(), 60)
            running.append(asyncio.create_task(idle.run()))
            # The group rebalances: one member gets the partition, the other none.
            await until(lambda: busy.problem() is None and idle.problem() is None
                         and bool(busy._consumer and busy._consumer.assignment())
                         and idle._consumer is not None and idle._rebalancing_since is None,
                         60, "rebalanced")
            assert idle._consumer is not None and not idle._consumer.assignment()

            # No record to read: Kafka still answers every fetch, and nothing flaps.
            deadline = time.monotonic() + 3 * SILENT_S
            while time.monotonic() < deadline:
                assert (busy.problem(), idle.problem()) == (None, None)
                await asyncio.sleep(0.2)

            await asyncio.to_thread(broker.stop)
            await until(lambda: (busy.problem() or "").startswith(
                "Kafka unreachable: no fetch answered for "), 4 * SILENT_S, "unready")
            # Nothing to fetch nor commit: the idle member tells by what it asks meanwhile.
            await until(lambda: (idle.problem() or "").startswith(
                "Kafka unreachable: no answer for "), 4 * SILENT_S, "unready (idle)")

            await asyncio.to_thread(broker.start)
            await broker.wait_ready()
            await until(lambda: busy.problem() is None and idle.problem() is None, 120,
                         "ready again")
        finally:
            busy.stop()
            idle.stop()
            await asyncio.wait_for(asyncio.gather(*running, return_exceptions=True), 60)
