"""CompactedTable's local view: latest value per key, decoded when asked for."""

from __future__ import annotations

import time
from dataclasses import dataclass

from consumers.table import CompactedTable


@dataclass
class FakeRecord:
    key: bytes | None
    value: bytes | None
    offset: int = 0
    timestamp: int = 0  # ms, as Kafka gives it


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
