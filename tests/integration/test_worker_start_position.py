"""Where a bot's group (start_from="latest") reads a partition it has no commit for, against
the real broker. aiokafka started every such partition at its end, not a brand-new group's
only: a STOP written to a partition added to message.inbound before the group took it on, or
to a partition that never had a record while the bot was down, was never answered."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import TopicPartition

from consumers.handling import Context, Record
from consumers.runtime import WorkerRuntime
from switchboard.producer import NEW_PARTITIONS_WITHIN_S
from tests.integration.runtimes import run_until
from tests.kafka_helpers import (
    add_partitions,
    committed_offset,
    new_topic,
    produce_to_partition,
)


class _Bot:
    """A bot-like worker's handler: what it handled, and an event set once `wanted` is."""

    def __init__(self) -> None:
        self.handled: list[tuple[int, bytes]] = []
        self.wanted: set[bytes] = set()
        self.done = asyncio.Event()

    async def handle(self, record: Record, ctx: Context) -> None:
        self.handled.append((record.partition, record.value))
        if self.wanted <= {value for _, value in self.handled}:
            self.done.set()

    def runtime(self, bootstrap: str, topic: str, name: str) -> WorkerRuntime:
        return WorkerRuntime(name=name, kafka=bootstrap, topics=[topic], handler=self.handle,
                             start_from="latest")


async def test_a_bot_answers_what_was_written_to_an_added_partition_before_taking_it_on(
        kafka_bootstrap: str) -> None:
    topic = await new_topic(kafka_bootstrap, "start-position", 1)
    bot = _Bot()
    bot.wanted = {b"hello", b"STOP"}
    runtime = bot.runtime(kafka_bootstrap, topic, f"start-added-{uuid.uuid4().hex[:8]}")

    async def added_once_running() -> None:
        await asyncio.wait_for(runtime.ready.wait(), 30)
        await produce_to_partition(kafka_bootstrap, topic, 0, (b"a", b"hello"))
        # Written at once: the group takes the partition on at its next metadata refresh.
        await add_partitions(kafka_bootstrap, topic, 2)
        await produce_to_partition(kafka_bootstrap, topic, 1, (b"b", b"STOP"))

    adding = asyncio.create_task(added_once_running())
    try:
        await run_until(runtime, bot.done, timeout_s=30 + NEW_PARTITIONS_WITHIN_S + 20)
    finally:
        await adding
    assert sorted(bot.handled) == [(0, b"hello"), (1, b"STOP")]


async def test_a_bot_answers_what_a_partition_never_written_got_while_it_was_down(
        kafka_bootstrap: str) -> None:
    topic = await new_topic(kafka_bootstrap, "start-position", 2)
    name = f"start-restart-{uuid.uuid4().hex[:8]}"
    # Before the group's first start: a brand-new bot does not answer them.
    await produce_to_partition(kafka_bootstrap, topic, 0, (b"a", b"history"))
    first = _Bot()
    first.wanted = {b"hello"}
    runtime = first.runtime(kafka_bootstrap, topic, name)

    async def written_once_running() -> None:
        await asyncio.wait_for(runtime.ready.wait(), 30)
        await produce_to_partition(kafka_bootstrap, topic, 0, (b"a", b"hello"))

    writing = asyncio.create_task(written_once_running())
    try:
        await run_until(runtime, first.done, timeout_s=40)
    finally:
        await writing
    assert first.handled == [(0, b"hello")]
    # The partition it never had a record of: its start was committed when taken on.
    assert await committed_offset(kafka_bootstrap, runtime.group_id,
                                  TopicPartition(topic, 1)) == 0

    await produce_to_partition(kafka_bootstrap, topic, 1, (b"b", b"STOP"))  # while down
    again = _Bot()
    again.wanted = {b"STOP"}
    await run_until(again.runtime(kafka_bootstrap, topic, name), again.done, timeout_s=40)
    assert again.handled == [(1, b"STOP")]
