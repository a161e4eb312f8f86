"""The worker runtime while its broker is away: a stop still ends, and leaves uncommitted
what it could not commit, for the next run."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer

from consumers.handling import Context, Record
from consumers.runtime import WorkerRuntime
from switchboard.topics import TopicSpec, ensure_topics
from tests.integration.processes import own_broker


async def test_a_stop_ends_while_the_commit_of_done_work_cannot_reach_kafka(
        tmp_path: Path) -> None:
    # aiokafka retries a commit until it finds a coordinator: the stop waited on it until
    # Kafka came back (a process manager's SIGKILL, in practice).
    async with own_broker(tmp_path) as broker:
        bootstrap = broker.bootstrap_servers
        topic = f"test.outage.{uuid.uuid4().hex[:8]}"
        group = f"g-{uuid.uuid4().hex[:8]}"
        await ensure_topics(bootstrap, partitions=1, replication_factor=1,
                            specs=(TopicSpec(topic, "test"),))
        started, finish, done = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def handler(record: Record, ctx: Context) -> None:
            started.set()
            await finish.wait()
            done.set()

        runtime = WorkerRuntime(name="test", kafka=bootstrap, topics=[topic], handler=handler,
                                group_id=group)
        running = asyncio.create_task(runtime.run())
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"v", key=b"k")
        finally:
            await producer.stop()
        await asyncio.wait_for(started.wait(), 60)
        await asyncio.to_thread(broker.stop)
        finish.set()  # done with Kafka away: its commit cannot be made
        await done.wait()
        await asyncio.sleep(1)  # the commit is under way
        runtime.stop()  # SIGTERM
        await asyncio.wait_for(running, 40)

        # Not committed, so not lost: the group's next run handles it again.
        await asyncio.to_thread(broker.start)
        again = asyncio.Event()

        async def second(record: Record, ctx: Context) -> None:
            again.set()

        restarted = WorkerRuntime(name="test", kafka=bootstrap, topics=[topic],
                                  handler=second, group_id=group)
        rerun = asyncio.create_task(restarted.run())
        try:
            await asyncio.wait_for(again.wait(), 60)
        finally:
            restarted.stop()
            await asyncio.wait_for(rerun, 30)
