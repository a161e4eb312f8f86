"""A worker's stop while its broker has vanished without a word (paused: connections open,
nothing answered, as when a network drops packets silently): it still ends within seconds,
what it had not committed left to the next owner, as after a crash."""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
from pathlib import Path

import pytest

from consumers.handling import Context, Record
from consumers.runtime import WorkerRuntime
from switchboard.records import OutRecord
from switchboard.topics import TopicSpec, ensure_topics
from tests.integration.processes import own_broker, paused
from tests.kafka_helpers import publish

# The runtime's own bounds: the commit of what is done (5 s), leaving the group (10 s), its
# producer's stop; with room for a loaded machine. It took 125 s: aiokafka's LeaveGroup waited
# for the consumer's request timeout, which is the rebalance timeout and 5 s.
STOP_WITHIN_S = 60.0


async def test_a_stop_ends_within_seconds_while_the_broker_answers_nothing(
        tmp_path: Path) -> None:
    async with own_broker(tmp_path) as broker:
        assert broker.process is not None
        bootstrap = broker.bootstrap_servers
        topic = f"test.silent.{uuid.uuid4().hex[:8]}"
        await ensure_topics(bootstrap, partitions=1, replication_factor=1,
                            specs=(TopicSpec(topic, "test"),))

        async def handler(record: Record, ctx: Context) -> None:
            pass

        runtime = WorkerRuntime(name="test", kafka=bootstrap, topics=[topic], handler=handler,
                                group_id=f"g-{uuid.uuid4().hex[:8]}")
        running = asyncio.create_task(runtime.run())
        try:
            await asyncio.wait_for(runtime.ready.wait(), 60)  # in its group, positioned
            with paused(broker):
                await asyncio.sleep(1)  # a fetch or a heartbeat now waits for an answer
                began = time.monotonic()
                runtime.stop()  # SIGTERM
                await asyncio.wait_for(asyncio.shield(running), STOP_WITHIN_S + 90)
                took_s = time.monotonic() - began
        finally:
            if not running.done():
                running.cancel()
        assert took_s < STOP_WITHIN_S, f"the stop took {took_s:.0f} s"


async def test_a_stop_with_a_commit_out_ends_it_and_leaves_no_asyncio_error(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A record finished while the broker is paused: its commit gets no answer and is left
    # out, not cancelled (consumers.commits). The stop's commit waits for it, within the time
    # limit; the consumer's stop closes its connections, failing the request, which aiokafka
    # would retry for ever (no coordinator any more): ended after the stop, nothing left
    # running, and no 'Task exception was never retrieved'.
    caplog.set_level("INFO")
    async with own_broker(tmp_path) as broker:
        assert broker.process is not None
        bootstrap = broker.bootstrap_servers
        topic = f"test.silent.{uuid.uuid4().hex[:8]}"
        await ensure_topics(bootstrap, partitions=1, replication_factor=1,
                            specs=(TopicSpec(topic, "test"),))
        started, finish = asyncio.Event(), asyncio.Event()

        async def handler(record: Record, ctx: Context) -> None:
            started.set()
            await finish.wait()

        runtime = WorkerRuntime(name="test", kafka=bootstrap, topics=[topic], handler=handler,
                                group_id=f"g-{uuid.uuid4().hex[:8]}")
        running = asyncio.create_task(runtime.run())
        try:
            await asyncio.wait_for(runtime.ready.wait(), 60)
            await publish(bootstrap, [OutRecord(topic=topic, key=b"k", value=b"v")])
            await asyncio.wait_for(started.wait(), 30)
            with paused(broker):
                finish.set()  # done: its commit is sent to the paused broker
                for _ in range(200):  # bounded: 20 s; given up on after COMMIT_TIMEOUT_S
                    if "commit failed" in _events(caplog):
                        break
                    await asyncio.sleep(0.1)
                out = runtime._commit_request
                assert out is not None and not out.done(), "no commit left out"
                began = time.monotonic()
                runtime.stop()  # SIGTERM
                await asyncio.wait_for(asyncio.shield(running), STOP_WITHIN_S + 90)
                took_s = time.monotonic() - began
                ended = out.done()
        finally:
            if not running.done():
                running.cancel()
    gc.collect()  # asyncio says an exception never retrieved as its task is collected
    assert not [r.getMessage() for r in caplog.records if r.name == "asyncio"], \
        [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert took_s < STOP_WITHIN_S, f"the stop took {took_s:.0f} s"
    assert ended, "the commit out still runs after the stop"
    assert "commit failed once kafka answered" not in _events(caplog)  # Kafka never answered


def _events(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.msg.get("event", "") for r in caplog.records if isinstance(r.msg, dict)]
