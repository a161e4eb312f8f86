"""DurableProducer under random slow partitions, failures, replacements and cancelled callers.

A fake idempotent client: each partition's batches end in the order they were sent, after a
random delay (a partition now and then waits long, as for a leader); a batch may fail, after
which that client refuses every later batch of the partition as out of order. Whatever the
interleaving: no caller is told "stored" unless every one of its records was acknowledged,
a partition's records land in the order of their calls, every caller has its answer within a
few timeouts (no hang), and once idle nothing is left buffered, held or running."""

from __future__ import annotations

import asyncio
import gc
import random
from typing import Any

import pytest
from aiokafka.errors import (
    KafkaTimeoutError,
    NotLeaderForPartitionError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
)
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from switchboard import producer as producer_module
from switchboard.producer import MAX_BATCH_BYTES, DurableProducer, PublishError
from switchboard.records import OutRecord
from tests.unit.fakes import FakeKafkaClient

TIMEOUT_S = 0.2
TOPICS = ("switchboard.raw.v1", "switchboard.message.status.v1")
PARTITIONS = 3


class Kafka:
    """What the fake clients share: what landed, per partition, in order."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.landed: dict[tuple[str, int], list[bytes]] = {}
        self.clients: list[RandomClient] = []


class RandomClient:
    kafka: Kafka

    def __init__(self, **options: Any) -> None:
        self.client = FakeKafkaClient(PARTITIONS)
        self.gaps: set[tuple[str, int]] = set()
        self.tails: dict[tuple[str, int], asyncio.Future[None]] = {}
        self.pending: set[asyncio.Future[None]] = set()
        self.stopped = self.closing = False
        RandomClient.kafka.clients.append(self)

    async def start(self) -> None:
        await asyncio.sleep(RandomClient.kafka.rng.random() * TIMEOUT_S / 4)

    async def stop(self) -> None:
        self.closing = True
        if self.pending:  # aiokafka's stop lets what it holds land (or fail) first
            await asyncio.wait(set(self.pending))
        self.stopped = True

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(MAX_BATCH_BYTES, 0)

    async def send_batch(self, batch: BatchBuilder, topic: str, *,
                         partition: int) -> asyncio.Future[None]:
        if self.closing:
            raise ProducerClosed()
        rng = RandomClient.kafka.rng
        if rng.random() < 0.01:  # no room in the client's queue in time
            raise KafkaTimeoutError()
        loop = asyncio.get_running_loop()
        key = (topic, partition)
        values = [record.value for record in DefaultRecordBatch(bytes(batch._build()))]
        done: asyncio.Future[None] = loop.create_future()
        before = self.tails.get(key)
        self.tails[key] = done
        self.pending.add(done)
        done.add_done_callback(self.pending.discard)
        roll = rng.random()
        # Mostly quick; sometimes slow but within the timeout; sometimes past it.
        delay = rng.random() * TIMEOUT_S * (0.05 if roll < 0.7 else 0.6 if roll < 0.9 else 1.8)
        fails = rng.random() < 0.04

        def land() -> None:
            if key in self.gaps:
                done.set_exception(OutOfOrderSequenceNumber())
            elif fails:
                self.gaps.add(key)
                done.set_exception(NotLeaderForPartitionError())
            else:
                RandomClient.kafka.landed.setdefault(key, []).extend(values)
                done.set_result(None)

        def after_before(_: Any = None) -> None:
            loop.call_later(delay, land)

        if before is None or before.done():
            after_before()
        else:
            before.add_done_callback(after_before)
        return done


@pytest.mark.parametrize("stop_early", [False, True])
@pytest.mark.parametrize("seed", range(8))
async def test_random_interleavings_keep_every_invariant(
        seed: int, stop_early: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(producer_module, "AIOKafkaProducer", RandomClient)
    captured: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _, c: captured.append(c))
    rng = random.Random(seed)
    kafka = RandomClient.kafka = Kafka(rng)
    producer = DurableProducer("unused:9092", timeout_s=TIMEOUT_S)
    await producer.start()
    loop = asyncio.get_running_loop()
    stored_calls: list[list[OutRecord]] = []
    late: list[tuple[int, float]] = []
    serial = 0

    async def call(records: list[OutRecord]) -> None:
        started = loop.time()
        try:
            await producer.publish(records)
        except PublishError:
            pass
        else:
            stored_calls.append(records)
        finally:
            if (took := loop.time() - started) > TIMEOUT_S * 5:  # wide: a busy machine lags
                late.append((len(records), took))

    calls: list[asyncio.Task[None]] = []
    stopping: asyncio.Task[None] | None = None
    for n in range(150):
        if stop_early and n == 100:  # a SIGTERM while calls are still coming
            stopping = asyncio.ensure_future(producer.stop())
            stop_started = loop.time()
        records = []
        for _ in range(rng.choice((1, 1, 2, 3))):
            serial += 1
            records.append(OutRecord(rng.choice(TOPICS), b"%08d" % serial,
                                     b"k%d" % rng.randrange(6)))
        calls.append(asyncio.ensure_future(call(records)))
        if rng.random() < 0.05:
            loop.call_later(rng.random() * TIMEOUT_S, calls[-1].cancel)
        await asyncio.sleep(rng.random() * TIMEOUT_S / 15)
    await asyncio.wait(calls)
    if stopping is not None:
        await stopping
        assert loop.time() - stop_started < TIMEOUT_S * 20
        assert producer._flusher is None, "outlived stop"
    await asyncio.sleep(TIMEOUT_S * 5)  # what is still out ends
    assert producer._buffered == 0
    assert producer._flusher is None
    started = loop.time()
    await producer.stop()
    assert loop.time() - started < TIMEOUT_S * 10
    await asyncio.sleep(0)
    # The producer's own tasks: others' (earlier tests on a shared loop) are not its.
    assert [t for t in asyncio.all_tasks()
            if getattr(t.get_coro(), "__qualname__", "").startswith("DurableProducer.")] == []
    gc.collect()
    await asyncio.sleep(0)

    assert late == []  # every caller had its answer within a few timeouts
    landed = {value for values in kafka.landed.values() for value in values}
    for records in stored_calls:  # no caller told "stored" unless its records were
        assert all(record.value in landed for record in records)
    for partition, values in kafka.landed.items():  # in the order of their calls
        assert values == sorted(values), partition
        assert len(values) == len(set(values)), partition
    assert [c.get("message") for c in captured] == []
    assert all(client.stopped for client in kafka.clients)
