"""A worker's stop while its broker has vanished without a word (paused: connections open,
nothing answered, as when a network drops packets silently): it still ends within seconds,
what it had not committed left to the next owner, as after a crash."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from consumers.handling import Context, Record
from consumers.runtime import WorkerRuntime
from switchboard.topics import TopicSpec, ensure_topics
from tests.integration.processes import own_broker, paused

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
