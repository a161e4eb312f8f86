"""Where a bot's group (start_from="latest") reads a partition it has no commit for, against
the real broker. aiokafka started every such partition at its end, not a brand-new group's
only: a STOP written to a partition added to message.inbound before the group took it on, or
to a partition that never had a record while the bot was down, was never answered. And where
a commit lay below the partition's first record (Kafka deleted the records: retention, a bot
down longer than retention.ms), it skipped to the end every record still kept."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import TopicPartition

from consumers.handling import Context, Record
from consumers.runtime import WorkerRuntime
from switchboard.producer import NEW_PARTITIONS_WITHIN_S
from tests.integration.runtimes import run_until
from tests.kafka_helpers import (
    add_partitions,
    committed_offset,
    delete_records_below,
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


async def test_a_bot_whose_commit_kafka_deleted_the_records_of_resumes_at_the_first_kept(
        kafka_bootstrap: str) -> None:
    topic = await new_topic(kafka_bootstrap, "start-position", 1)
    tp = TopicPartition(topic, 0)
    name = f"start-deleted-{uuid.uuid4().hex[:8]}"
    first = _Bot()
    first.wanted = {b"0", b"1"}
    runtime = first.runtime(kafka_bootstrap, topic, name)

    async def written_once_running() -> None:
        await asyncio.wait_for(runtime.ready.wait(), 30)
        await produce_to_partition(kafka_bootstrap, topic, 0, (b"a", b"0"), (b"b", b"1"))

    writing = asyncio.create_task(written_once_running())
    try:
        await run_until(runtime, first.done, timeout_s=40)
    finally:
        await writing
    assert await committed_offset(kafka_bootstrap, runtime.group_id, tp) == 2
    # While the bot is down: eight more, and Kafka deletes those below 5 (its commit, 2, is
    # below the first record kept). aiokafka's "latest" reset skipped 5 to 9 too.
    await produce_to_partition(kafka_bootstrap, topic, 0,
                               *((b"k", str(offset).encode()) for offset in range(2, 10)))
    await delete_records_below(kafka_bootstrap, tp, 5)
    again = _Bot()
    again.wanted = {str(offset).encode() for offset in range(5, 10)}
    await run_until(again.runtime(kafka_bootstrap, topic, name), again.done, timeout_s=40)
    assert again.handled == [(0, str(offset).encode()) for offset in range(5, 10)]
    assert await committed_offset(kafka_bootstrap, runtime.group_id, tp) == 10


async def test_a_running_bot_whose_position_kafka_deleted_goes_on_at_the_first_kept(
        kafka_bootstrap: str, caplog: pytest.LogCaptureFixture) -> None:
    # The bot behind (its records in flight held), Kafka deletes records past its position:
    # its next fetch is out of range, and aiokafka's "latest" reset skipped the rest too.
    topic = await new_topic(kafka_bootstrap, "start-position", 1)
    release = asyncio.Event()
    bot = _Bot()
    bot.wanted = {b"8", b"9"}

    holding: list[int] = []

    async def held(record: Record, ctx: Context) -> None:
        holding.append(record.offset)
        await release.wait()
        await bot.handle(record, ctx)

    runtime = WorkerRuntime(name=f"start-behind-{uuid.uuid4().hex[:8]}", kafka=kafka_bootstrap,
                            topics=[topic], handler=held, start_from="latest",
                            max_batch=2, max_in_flight=2)

    async def deleted_while_held() -> None:
        await asyncio.wait_for(runtime.ready.wait(), 30)
        await produce_to_partition(kafka_bootstrap, topic, 0,
                                   *((str(offset).encode(), str(offset).encode())
                                     for offset in range(10)))
        # Two records held (keys of their own: both started), the next one or two fetched
        # and waiting for room: fetching is paused (what was fetched past them dropped), its
        # position at most 4.
        for _ in range(600):
            if (len(holding) == 2 and runtime._consumer is not None
                    and runtime._consumer.paused()):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the bot never paused fetching")
        await delete_records_below(kafka_bootstrap, TopicPartition(topic, 0), 8)
        release.set()

    deleting = asyncio.create_task(deleted_while_held())
    try:
        await run_until(runtime, bot.done, timeout_s=60)
    finally:
        await deleting
    # Those fetched before the deletion (0, 1 and the one or two waiting for room), then
    # those Kafka kept.
    handled = sorted(int(value) for _, value in bot.handled)
    before = len(handled) - 2
    assert before in (3, 4)
    assert handled == [*range(before), 8, 9]
    # Said, as at a start (consumers.skips): aiokafka's reset says so at INFO only.
    assert [(r.levelname, r.msg["lost"]) for r in caplog.records
            if isinstance(r.msg, dict) and "lost" in r.msg] == [("WARNING", {0: f"{before}-7"})]
