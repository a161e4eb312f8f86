"""A worker's stop while its broker has vanished without a word (paused: connections open,
nothing answered, as when a network drops packets silently): it still ends within seconds,
what it had not committed left to the next owner, as after a crash."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from consumers.handling import Context, Handler, Record
from consumers.runtime import WorkerRuntime
from switchboard.localkafka import LocalKafka
from switchboard.records import OutRecord
from tests.integration.processes import own_broker, paused
from tests.kafka_helpers import new_topic, publish

# The runtime's own bounds: the commit of what is done (5 s), leaving the group (10 s), its
# producer's stop; with room for a loaded machine. It took 125 s: aiokafka's LeaveGroup waited
# for the consumer's request timeout, which is the rebalance timeout and 5 s.
STOP_WITHIN_S = 60.0


@dataclass
class _RunningWorker:
    """A worker in its group and positioned, on a broker of its own the test may pause."""

    broker: LocalKafka
    topic: str
    runtime: WorkerRuntime
    running: asyncio.Task[None]

    async def stop_took_s(self) -> float:
        """Seconds from the stop SIGTERM asks for to the end of the run."""
        began = time.monotonic()
        self.runtime.stop()  # SIGTERM
        await asyncio.wait_for(asyncio.shield(self.running), STOP_WITHIN_S + 90)
        return time.monotonic() - began


@contextlib.asynccontextmanager
async def _running_worker(tmp_path: Path, handler: Handler) -> AsyncIterator[_RunningWorker]:
    """Cancelled if the test leaves it running: a failed wait must not leave it consuming."""
    async with own_broker(tmp_path) as broker:
        assert broker.process is not None
        topic = await new_topic(broker.bootstrap_servers, "silent", 1)
        runtime = WorkerRuntime(name="test", kafka=broker.bootstrap_servers, topics=[topic],
                                handler=handler, group_id=f"g-{uuid.uuid4().hex[:8]}")
        running = asyncio.create_task(runtime.run())
        try:
            await asyncio.wait_for(runtime.ready.wait(), 60)  # in its group, positioned
            yield _RunningWorker(broker, topic, runtime, running)
        finally:
            if not running.done():
                running.cancel()


async def test_a_stop_ends_within_seconds_while_the_broker_answers_nothing(
        tmp_path: Path) -> None:
    async def handler(record: Record, ctx: Context) -> None:
        pass

    async with _running_worker(tmp_path, handler) as worker:
        with paused(worker.broker):
            await asyncio.sleep(1)  # a fetch or a heartbeat now waits for an answer
            took_s = await worker.stop_took_s()
    assert took_s < STOP_WITHIN_S, f"the stop took {took_s:.0f} s"


async def test_a_stop_with_a_commit_out_ends_it_and_leaves_no_asyncio_error(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A record finished while the broker is paused: its commit gets no answer and is left
    # out, not cancelled (consumers.commits). The stop's commit waits for it, within the time
    # limit; the consumer's stop closes its connections, failing the request, which aiokafka
    # would retry for ever (no coordinator any more): ended after the stop, nothing left
    # running, and no 'Task exception was never retrieved'.
    caplog.set_level("INFO")
    started, finish = asyncio.Event(), asyncio.Event()

    async def handler(record: Record, ctx: Context) -> None:
        started.set()
        await finish.wait()

    async with _running_worker(tmp_path, handler) as worker:
        await publish(worker.broker.bootstrap_servers,
                      [OutRecord(topic=worker.topic, key=b"k", value=b"v")])
        await asyncio.wait_for(started.wait(), 30)
        with paused(worker.broker):
            finish.set()  # done: its commit is sent to the paused broker
            for _ in range(200):  # bounded: 20 s; given up on after COMMIT_TIMEOUT_S
                if "commit failed" in _events(caplog):
                    break
                await asyncio.sleep(0.1)
            out = worker.runtime._commit_request
            assert out is not None and not out.done(), "no commit left out"
            took_s = await worker.stop_took_s()
            ended = out.done()
    gc.collect()  # asyncio says an exception never retrieved as its task is collected
    assert not [r.getMessage() for r in caplog.records if r.name == "asyncio"], \
        [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert took_s < STOP_WITHIN_S, f"the stop took {took_s:.0f} s"
    assert ended, "the commit out still runs after the stop"
    assert "commit failed once kafka answered" not in _events(caplog)  # Kafka never answered


def _events(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.msg.get("event", "") for r in caplog.records if isinstance(r.msg, dict)]
