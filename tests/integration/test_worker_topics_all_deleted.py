"""A worker whose every topic is deleted under it, on the real broker: the group's rebalance
leaves it no partition, and Kafka answers it has none of its topics. /readyz said `Kafka
unreachable: no answer ... (this member has no partition)`, sending the operator to the
network; it now says the topics are missing, and is ready again once they are created."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from consumers import kafka_watch
from consumers.handling import Context, Record
from consumers.runtime import WorkerRuntime
from switchboard.topics import TopicSpec, ensure_topics
from tests.integration.processes import until
from tests.kafka_helpers import delete_topic, new_topic

SILENT_S = 5.0
MISSING = "Kafka topics missing (this member has no partition)"


async def _ignore(record: Record, ctx: Context) -> None:
    return None


async def test_a_worker_whose_topics_were_deleted_says_so_and_not_kafka_away(
        kafka_bootstrap: str, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_watch, "KAFKA_SILENT_AFTER_S", SILENT_S)
    caplog.set_level("INFO")
    topic = await new_topic(kafka_bootstrap, "alldeleted", 1)
    runtime = WorkerRuntime(name="test-all-deleted", kafka=kafka_bootstrap, topics=[topic],
                            handler=_ignore, group_id=f"g-all-deleted-{uuid.uuid4().hex[:8]}")
    running = asyncio.create_task(runtime.run())
    try:
        await asyncio.wait_for(runtime.ready.wait(), 60)
        await delete_topic(kafka_bootstrap, topic)
        await until(lambda: runtime.problem() is not None, 12 * SILENT_S, "unready")
        # Kafka's answers (the topic gone, the rebalance) first: said once they have lasted.
        await until(lambda: runtime.problem() == MISSING
                    or (runtime.problem() or "").startswith("Kafka unreachable"),
                    12 * SILENT_S, "said why")
        assert runtime.problem() == MISSING
        [said] = [r.msg for r in caplog.records if isinstance(r.msg, dict)
                  and r.msg.get("event") == "kafka has none of the worker's topics"]
        assert said["topics"] == [topic]

        await ensure_topics(kafka_bootstrap, partitions=1, replication_factor=1,
                            specs=(TopicSpec(topic, "test"),))
        await until(lambda: runtime.problem() is None, 120, "ready again")
        assert [r for r in caplog.records if isinstance(r.msg, dict)
                and r.msg.get("event") == "kafka has the worker's topics again"]
    finally:
        runtime.stop()
        await asyncio.wait_for(running, 60)
