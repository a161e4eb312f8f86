"""CompactedTable's local view: latest value per key, decoded when asked for."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import TopicAuthorizationFailedError

from consumers import table as table_module
from consumers import table_values
from consumers.table import CompactedTable
from consumers.table_values import SWEEP_EVERY_S
from tests.unit.fakes import ModuleWith


@dataclass
class FakeRecord:
    key: bytes | None
    value: bytes | None
    offset: int = 0
    timestamp: int = 0  # ms, as Kafka gives it
    partition: int = 0


def decode(value: bytes) -> int:
    return int(value)  # ValueError for anything but digits: a record that cannot be read


def table_of(*records: FakeRecord) -> tuple[CompactedTable[int], list[bytes]]:
    decoded: list[bytes] = []

    def counting(value: bytes) -> int:
        decoded.append(value)
        return decode(value)

    table = CompactedTable("unused:9092", "topic", counting)
    for record in records:
        table._apply(record)
    return table, decoded


def test_latest_value_wins_and_only_keys_asked_for_are_decoded() -> None:
    table, decoded = table_of(FakeRecord(b"a", b"1"), FakeRecord(b"a", b"2"),
                              FakeRecord(b"b", b"3"))
    assert len(table) == 2
    assert table.get(b"a") == 2
    assert table.get(b"a") == 2
    assert decoded == [b"2"]  # once, and never the value it replaced or key b
    assert table.get(b"missing") is None


def test_tombstone_deletes_and_records_without_key_are_ignored() -> None:
    table, _ = table_of(FakeRecord(b"a", b"1"), FakeRecord(None, b"9"))
    assert table.get(b"a") == 1
    table._apply(FakeRecord(b"a", None))
    assert table.get(b"a") is None and len(table) == 0


def test_unreadable_value_keeps_the_last_readable_one() -> None:
    table, _ = table_of(FakeRecord(b"a", b"1"))
    assert table.get(b"a") == 1
    table._apply(FakeRecord(b"a", b"not a number"))
    assert table.get(b"a") == 1


def test_local_write_shows_at_once_and_a_later_record_replaces_it() -> None:
    table, _ = table_of(FakeRecord(b"a", b"1"))
    table.put_local(b"a", 5)
    assert table.get(b"a") == 5
    table._apply(FakeRecord(b"a", b"6"))
    assert table.get(b"a") == 6


def test_keys_older_than_the_topics_retention_are_dropped_from_memory() -> None:
    # The ledger topic deletes ids after its retention; a sender running for weeks would
    # otherwise keep every id it ever read.
    now = time.time()
    table = CompactedTable("unused:9092", "topic", decode, max_age_s=100)
    table._apply(FakeRecord(b"old", b"1", timestamp=int((now - 200) * 1000)))
    table._apply(FakeRecord(b"rewritten", b"2", timestamp=int((now - 200) * 1000)))
    table._apply(FakeRecord(b"recent", b"3", timestamp=int((now - 50) * 1000)))
    table._apply(FakeRecord(b"rewritten", b"4", timestamp=int((now - 10) * 1000)))
    table.put_local(b"ours", 5)
    table._drop_older_than(now - 100)
    assert [table.get(k) for k in (b"old", b"rewritten", b"recent", b"ours")] == [None, 4, 3, 5]
    assert len(table) == 3


def test_a_key_in_two_partitions_is_kept_until_its_newer_record_is_past_retention() -> None:
    # Its topic gained partitions: the key's older record, in the partition it was written to
    # before, may be read after the newer one.
    now = time.time()
    table = CompactedTable("unused:9092", "topic", decode, max_age_s=100)
    table._apply(FakeRecord(b"a", b"2", timestamp=int((now - 10) * 1000), partition=6))
    table._apply(FakeRecord(b"a", b"1", timestamp=int((now - 200) * 1000), partition=0))
    table._apply(FakeRecord(b"b", b"3", timestamp=int((now - 10) * 1000), partition=6))
    table._apply(FakeRecord(b"b", None, partition=0))  # its partition 6 record still counts
    table._drop_older_than(now - 100)
    assert len(table) == 2 and table.get(b"a") is not None and table.get(b"b") == 3
    table._drop_older_than(now)
    assert len(table) == 0


class FakeConsumer:
    """Hands out the given batches of one partition, one per fetch, then nothing."""

    def __init__(self, *batches: list[FakeRecord]) -> None:
        self.batches = list(batches)

    async def getmany(self, timeout_ms: int) -> dict[TopicPartition, list[FakeRecord]]:
        return {TopicPartition("topic", 0): self.batches.pop(0)} if self.batches else {}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0}


async def test_the_follower_forgets_keys_past_max_age_by_their_record_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # What the sender's ledger relies on to stay as small as its topic (max_age_s = the
    # topic's retention): records are dated by Kafka's timestamp, not when they were read.
    clock = {"now": 1_000_000.0}
    monkeypatch.setattr(table_values, "time", ModuleWith(time, time=lambda: clock["now"]))
    start = clock["now"]
    table = CompactedTable("unused:9092", "topic", decode, max_age_s=100)
    table._consumer = FakeConsumer(
        [FakeRecord(b"old", b"1", timestamp=int((start - 200) * 1000)),
         FakeRecord(b"recent", b"2", timestamp=int((start - 10) * 1000))],
        [FakeRecord(b"later", b"3", timestamp=int((start + 30) * 1000))])

    await table._poll(0)  # read long after "old" was written, but no sweep is due yet
    assert [table.get(k) for k in (b"old", b"recent")] == [1, 2]

    clock["now"] = start + SWEEP_EVERY_S  # the next poll sweeps: older than start - 40 go
    await table._poll(0)
    assert [table.get(k) for k in (b"old", b"recent", b"later")] == [None, 2, 3]
    assert len(table) == 2

    clock["now"] = start + 2 * SWEEP_EVERY_S  # a minute on: older than start + 20 go
    await table._poll(0)
    assert len(table) == 1 and table.get(b"later") == 3


class FailingOnceConsumer(FakeConsumer):
    """The first fetch fails as aiokafka's does when the topic may no longer be read."""

    def __init__(self, *batches: list[FakeRecord]) -> None:
        super().__init__(*batches)
        self.failed = False

    async def getmany(self, timeout_ms: int) -> dict[TopicPartition, list[FakeRecord]]:
        if not self.failed:
            self.failed = True
            raise TopicAuthorizationFailedError()
        await asyncio.sleep(0.001)  # as a real fetch waits: the follower must let others run
        return await super().getmany(timeout_ms)

    async def position(self, tp: TopicPartition) -> int:
        return 0


async def test_a_failed_fetch_is_logged_and_the_follower_goes_on(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # A follower that ended at its first error would leave the opt-out list as it was, with
    # nobody told: the latest STOPs would never reach this worker.
    monkeypatch.setattr(table_module, "FOLLOW_RETRY_S", 0.01)
    table = CompactedTable("unused:9092", "topic", decode)
    table._consumer = FailingOnceConsumer([FakeRecord(b"a", b"1")])
    table._partitions = [TopicPartition("topic", 0)]
    follower = asyncio.create_task(table._follow_forever())
    try:
        async with asyncio.timeout(5), table._advanced:  # notified after every fetch
            await table._advanced.wait_for(lambda: table.get(b"a") is not None)
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
    assert table.get(b"a") == 1
    assert "table follower cannot read" in caplog.text
