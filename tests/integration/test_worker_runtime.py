"""The consumer runtime against the real broker: order, retries, dead letters, commits."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from consumers import runtime as runtime_module
from consumers.handling import Context, PoisonRecord, Record
from consumers.runtime import RetryPolicy, WorkerRuntime
from switchboard.records import source_of
from switchboard.topics import DEAD_LETTER, TopicSpec, ensure_topics
from tests.integration.runtimes import run_until
from tests.kafka_helpers import TopicWatcher, new_topic


async def _produce(bootstrap: str, topic: str, items: list[tuple[str, bytes]],
                   headers: dict[str, list[tuple[str, bytes]]] | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in items:
            await producer.send(topic, value, key=key.encode(),
                                headers=(headers or {}).get(key))
        await producer.flush()
    finally:
        await producer.stop()


async def test_order_per_key_retries_and_dead_letters(kafka_bootstrap: str) -> None:
    topic = await new_topic(kafka_bootstrap, "runtime", 3)
    items = [(f"contact-{i % 5}", orjson.dumps({"n": i})) for i in range(100)]
    items.append(("contact-x", b"not json"))  # poison: dead-lettered at once
    items.append(("contact-y", orjson.dumps({"n": -1})))  # always fails: dead-lettered after 3
    # The poison record names its account the way our producers do: its dead letter says so.
    await _produce(kafka_bootstrap, topic, items,
                   {"contact-x": [("ce_source", source_of("infobip", "acme").encode())]})

    seen: dict[bytes, list[int]] = defaultdict(list)
    failures: dict[int, int] = defaultdict(int)
    done = asyncio.Event()

    async def handler(record: Record, ctx: Context) -> None:
        try:
            n = orjson.loads(record.value)["n"]
        except orjson.JSONDecodeError as exc:
            raise PoisonRecord(str(exc)) from exc
        if n == -1 or (n % 10 == 0 and failures[n] < 2):  # transient failures, then success
            failures[n] += 1
            raise RuntimeError(f"flaky {n}")
        assert record.key is not None
        seen[record.key].append(n)
        if sum(len(v) for v in seen.values()) == 100:
            done.set()

    async with TopicWatcher(kafka_bootstrap, (DEAD_LETTER.name,)) as watcher:
        before = await watcher.snapshot()
        group = f"g-{uuid.uuid4().hex[:8]}"
        runtime = WorkerRuntime(name="test", kafka=kafka_bootstrap, topics=[topic],
                                handler=handler, group_id=group,
                                retry=RetryPolicy(max_attempts=3, base_delay_s=0.01))
        await run_until(runtime, done)
        letters = (await watcher.records_since(before)).get(DEAD_LETTER.name, [])

    for key, numbers in seen.items():
        assert numbers == sorted(numbers), f"{key!r} handled out of order"
    assert sorted(n for ns in seen.values() for n in ns) == list(range(100))
    values = sorted((orjson.loads(r.value) for r in letters), key=lambda v: v["reason"])
    assert len(values) == 2
    assert values[0]["reason"].startswith("RuntimeError: flaky -1")
    assert (values[0]["provider"], values[0]["account"]) == ("", "")  # it names none
    assert values[1]["reason"].startswith("undecodable record")
    assert (values[1]["provider"], values[1]["account"]) == ("infobip", "acme")
    assert failures[-1] == 3

    # Everything was committed: the same group handles nothing more after a restart.
    await _produce(kafka_bootstrap, topic, [("contact-z", orjson.dumps({"n": 1000}))])
    again: list[int] = []
    done_again = asyncio.Event()

    async def second(record: Record, ctx: Context) -> None:
        again.append(orjson.loads(record.value)["n"])
        done_again.set()

    restarted = WorkerRuntime(name="test", kafka=kafka_bootstrap, topics=[topic],
                              handler=second, group_id=group)
    await run_until(restarted, done_again)
    assert again == [1000]


async def test_stop_finishes_in_flight_work_and_commits(kafka_bootstrap: str) -> None:
    topic = await new_topic(kafka_bootstrap, "runtime", 3)
    await _produce(kafka_bootstrap, topic, [(f"k{i}", str(i).encode()) for i in range(40)])
    group = f"g-{uuid.uuid4().hex[:8]}"
    handled: list[int] = []
    started = asyncio.Event()

    async def slow(record: Record, ctx: Context) -> None:
        started.set()
        await asyncio.sleep(0.05)
        handled.append(int(record.value))

    runtime = WorkerRuntime(name="test", kafka=kafka_bootstrap, topics=[topic],
                            handler=slow, group_id=group, max_batch=10, max_concurrency=2)
    task = asyncio.create_task(runtime.run())
    await asyncio.wait_for(started.wait(), 30)
    runtime.stop()  # as on SIGTERM
    await asyncio.wait_for(task, 30)
    first_run = list(handled)
    assert first_run, "nothing handled before stop"

    done = asyncio.Event()

    async def rest(record: Record, ctx: Context) -> None:
        handled.append(int(record.value))
        if len(handled) >= 40:
            done.set()

    await run_until(WorkerRuntime(name="test", kafka=kafka_bootstrap,
                                   topics=[topic], handler=rest, group_id=group), done)
    assert sorted(handled) == list(range(40)), "records lost or handled twice across the stop"


async def test_a_worker_with_every_slot_held_commits_and_stays_in_its_group(
        kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Every in-flight slot held by slow records (a sender behind a provider's 1/s rate limit
    # with a backlog): the loop waited for a slot without fetching or committing. Done work
    # stayed uncommitted, and past max.poll.interval (300 s; 3 s here) aiokafka took the
    # member for stuck and left the group: the other member took the partition over from the
    # last commit, and handled again what was done, and what was still being handled.
    class ShortPollInterval(AIOKafkaConsumer):  # type: ignore[misc]
        def __init__(self, *topics: str, **options: Any) -> None:
            super().__init__(*topics, **options | {"max_poll_interval_ms": 3000})

    monkeypatch.setattr(runtime_module, "AIOKafkaConsumer", ShortPollInterval)
    topic = f"test.runtime.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, partitions=1, replication_factor=1,
                        specs=(TopicSpec(topic, "test"),))
    tp = TopicPartition(topic, 0)
    group = f"g-{uuid.uuid4().hex[:8]}"
    handled: list[int] = []
    slow, go_on = asyncio.Event(), asyncio.Event()

    async def handler(record: Record, ctx: Context) -> None:
        if record.offset == 1:
            slow.set()
            await go_on.wait()
        handled.append(record.offset)

    members = [WorkerRuntime(name="test", kafka=kafka_bootstrap, topics=[topic],
                             handler=handler, group_id=group, max_in_flight=1)
               for _ in range(2)]
    tasks = [asyncio.create_task(member.run()) for member in members]
    try:
        for _ in range(300):  # both in the group, the partition assigned to one of them
            consumers = [member._consumer for member in members if member._consumer]
            if len(consumers) == 2 and len({c._coordinator.generation for c in consumers}) == 1 \
                    and {tp} == set().union(*(c.assignment() for c in consumers)):
                break
            await asyncio.sleep(0.1)
        await _produce(kafka_bootstrap, topic, [("k", str(i).encode()) for i in range(4)])
        await asyncio.wait_for(slow.wait(), 60)
        await asyncio.sleep(6)  # twice the poll interval, record 2 waiting for the slot
        async with _group_offsets(kafka_bootstrap, group) as committed:
            assert await committed(tp) == 1  # record 0, done meanwhile
        go_on.set()
        # Later records come too: the partitions paused meanwhile are fetched from again.
        await _produce(kafka_bootstrap, topic, [("k", b"4")])
        for _ in range(300):
            if len(handled) >= 5:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)  # time for a second handling to show
    finally:
        go_on.set()
        for member in members:
            member.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    assert handled == [0, 1, 2, 3, 4]


@contextlib.asynccontextmanager
async def _group_offsets(bootstrap: str, group: str
                         ) -> AsyncIterator[Callable[[TopicPartition], Awaitable[int | None]]]:
    """The group's committed offsets, read by a consumer outside the group."""
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                              enable_auto_commit=False)
    await reader.start()
    try:
        yield reader.committed
    finally:
        await reader.stop()
