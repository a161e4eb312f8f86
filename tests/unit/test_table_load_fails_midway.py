"""A ledger load that fails after some fetches were applied (the broker gone, a record aiokafka
cannot read, Ctrl-C): the collector is back as found, both consumers are stopped, no follower
runs, and what was applied until then is what those records applied alone hold."""

from __future__ import annotations

import asyncio
import gc
import random
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import TopicPartition

import consumers.table
from tests.unit.test_compacted_table import FakeRecord
from tests.unit.test_table_load_runs import VALUES, ledger

TOPIC = "ledger"
TPS = [TopicPartition(TOPIC, p) for p in range(3)]


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    was = gc.isenabled()
    yield
    (gc.enable if was else gc.disable)()


class Consumer:
    """aiokafka's consumer as a load uses it: fetches given in turn, then `failure` raised."""

    made: list[Consumer] = []

    def __init__(self, fetches: list[list[FakeRecord]], failure: BaseException,
                 **options: Any) -> None:
        self.fetches, self.failure = list(fetches), failure
        self.read = {tp: 0 for tp in TPS}
        self.stopped = False
        self.collecting_while_fetching: list[bool] = []
        Consumer.made.append(self)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self.stopped = True

    def assign(self, tps: list[TopicPartition]) -> None:
        return None

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        return None

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 10**6 for tp in tps}  # never reached: the load fails first

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 0 for tp in tps}

    async def getmany(self, timeout_ms: int) -> dict[TopicPartition, list[FakeRecord]]:
        self.collecting_while_fetching.append(gc.isenabled())
        await asyncio.sleep(0)
        if not self.fetches:
            raise self.failure
        fetch = self.fetches.pop(0)
        for record in fetch:
            self.read[TPS[record.partition]] += 1
        return {TPS[fetch[0].partition]: fetch} if fetch else {}

    async def position(self, tp: TopicPartition) -> int:
        return self.read[tp]


def fetches(rng: random.Random) -> list[list[FakeRecord]]:
    """Fetches of one partition each, as aiokafka gives them, of every kind of record."""
    made = []
    for n in range(rng.randrange(1, 12)):
        partition = rng.randrange(3)
        made.append([FakeRecord(f"cmd-{rng.randrange(30)}".encode(),
                                VALUES[rng.choice(list(VALUES))], offset=n,
                                timestamp=rng.choice((0, 1_000_000, 1_700_000_000_000)),
                                partition=partition)
                     for _ in range(rng.randrange(1, 40))])
    return made


@pytest.mark.parametrize("failure", [ConnectionError("broker gone"), KeyboardInterrupt()],
                         ids=["error", "ctrl-c"])
@pytest.mark.parametrize("seed", range(10))
def test_a_load_failing_midway_leaves_the_collector_and_closes_the_table(
        seed: int, failure: BaseException, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)
    loaded = fetches(rng)
    Consumer.made = []

    async def partitions(kafka: object, topic: str) -> list[TopicPartition]:
        return TPS

    monkeypatch.setattr(consumers.table, "topic_partitions", partitions)
    monkeypatch.setattr(consumers.table, "topic_name", lambda kafka, topic: topic)
    monkeypatch.setattr(consumers.table, "kafka_options", lambda kafka, role: {})
    monkeypatch.setattr(consumers.table, "AIOKafkaConsumer",
                        lambda **options: Consumer(loaded, failure, **options))
    gc.enable()
    table = ledger()

    async def load() -> None:
        with pytest.raises(type(failure)):
            await table.start()

    asyncio.run(load())
    assert gc.isenabled()
    reader, offsets = Consumer.made
    assert reader.collecting_while_fetching and not any(reader.collecting_while_fetching)
    assert reader.stopped and offsets.stopped
    assert table._follow is None
    alone = ledger()
    for fetch in loaded:
        for record in fetch:
            alone._apply(record)
    assert table._undecoded == alone._undecoded and table._local == alone._local
