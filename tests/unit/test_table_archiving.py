"""A table with `archiving` (the sender's ledger): entries older than its `whole_for_s` in a
final state are kept as a fingerprint and that state, read back without their result; the
others stay whole, as does every entry of a table without it."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from consumers.ledger import (
    LEDGER_ARCHIVING,
    LEDGER_WHOLE_FOR_S,
    LedgerEntry,
    decode_ledger,
    ledger_stands,
)
from consumers.table import CompactedTable
from consumers.table_archive import BUCKET_S
from consumers.table_values import SWEEP_EVERY_S
from switchboard.commands import OutboundResult, ResultStatus
from tests.unit.test_compacted_table import FakeRecord

DAY_S = 86_400
AGO_1H = LEDGER_WHOLE_FOR_S + 60  # just past the whole window


def entry(state: str) -> LedgerEntry:
    result = None
    if state in ("sent", "failed"):
        result = OutboundResult(command_id="cmd", account="acme", provider="infobip",
                                to="+41790000001", attempts=1, completed_at=datetime.now(UTC),
                                status=ResultStatus.ACCEPTED if state == "sent"
                                else ResultStatus.FAILED)
    return LedgerEntry.model_validate({"state": state, "result": result})


def record(key: bytes, state: str | None, age_s: float, partition: int = 0) -> FakeRecord:
    """The ledger's record of `key`, written `age_s` ago (None: a tombstone)."""
    value = None if state is None else entry(state).model_dump_json().encode()
    return FakeRecord(key, value, timestamp=int((time.time() - age_s) * 1000),
                      partition=partition)


def ledger(*records: FakeRecord) -> CompactedTable[LedgerEntry]:
    table = CompactedTable("unused:9092", "ledger", decode_ledger, stands=ledger_stands,
                           max_age_s=8 * DAY_S, archiving=LEDGER_ARCHIVING)
    for read in records:
        table._apply(read)
    return table


def whole(table: CompactedTable[LedgerEntry]) -> set[bytes]:
    return set(table._local).union(*table._undecoded.values(), *table._values.values())


def read(table: CompactedTable[LedgerEntry], key: bytes) -> tuple[str, bool] | None:
    """The key's state, and whether its result is held."""
    found = table.get(key)
    return None if found is None else (found.state, found.result is not None)


@pytest.mark.parametrize(("state", "age_s", "archived"), [
    ("sent", 2 * DAY_S, True),
    ("failed", AGO_1H, True),
    ("sent", LEDGER_WHOLE_FOR_S - 60, False),  # recent: a redelivery republishes its result
    ("failed", 60, False),
    ("pending", 2 * DAY_S, False),  # never archived
    ("released", 2 * DAY_S, False),
])
def test_old_final_records_read_at_start_are_archived_the_others_stay_whole(
        state: str, age_s: float, archived: bool) -> None:
    table = ledger(record(b"old-pending", "pending", 3 * DAY_S),  # then its outcome
                   record(b"id", "pending", age_s + 1), record(b"id", state, age_s))
    assert (b"id" not in whole(table)) is archived
    assert (b"id" not in table._written) is archived
    assert read(table, b"id") == (state, state in ("sent", "failed") and not archived)
    assert read(table, b"unknown") is None
    assert len(table) == 2


def test_records_without_a_timestamp_or_unreadable_stay_whole(
        caplog: pytest.LogCaptureFixture) -> None:
    table = ledger(FakeRecord(b"no-time", entry("sent").model_dump_json().encode()),
                   FakeRecord(b"garbled", b"not json", timestamp=1_000))
    assert whole(table) == {b"no-time", b"garbled"}
    assert read(table, b"no-time") == ("sent", True)
    # May stand for a send the provider has: pending (not sent again), never absent.
    assert read(table, b"garbled") == ("pending", False)
    assert "ledger record cannot be read" in caplog.text


def test_a_table_without_archiving_keeps_old_records_whole() -> None:
    table = CompactedTable("unused:9092", "ledger", decode_ledger, max_age_s=8 * DAY_S)
    table._apply(record(b"id", "sent", 2 * DAY_S))
    assert whole(table) == {b"id"} and read(table, b"id") == ("sent", True)


def test_archiving_needs_a_max_age() -> None:
    with pytest.raises(ValueError, match="max_age_s"):
        CompactedTable("unused:9092", "ledger", decode_ledger, archiving=LEDGER_ARCHIVING)


def test_the_sweep_archives_final_entries_past_the_whole_window(
        monkeypatch: pytest.MonkeyPatch) -> None:
    table = ledger(record(b"read", "sent", 60), record(b"decoded", "failed", 60),
                   record(b"pending", "pending", 60), record(b"released", "released", 60))
    table.put_local(b"unread", entry("sent"))  # written, never read back (follower stuck)
    table.put_local(b"read-back", entry("sent"))
    table._apply(record(b"read-back", "sent", 0))
    assert read(table, b"decoded") == ("failed", True)  # decoded: held as a value
    table._drop_expired()  # a sweep now: nothing past the window yet
    assert len(table._archived or ()) == 0
    later = time.time() + LEDGER_WHOLE_FOR_S + SWEEP_EVERY_S
    monkeypatch.setattr(time, "time", lambda: later)
    table._drop_expired()
    assert whole(table) == {b"pending", b"released", b"unread"}
    assert [read(table, key) for key in (b"read", b"decoded", b"read-back", b"unread",
                                         b"pending", b"released")] == [
        ("sent", False), ("failed", False), ("sent", False), ("sent", True),
        ("pending", False), ("released", False)]
    assert len(table) == 6
    assert set(table._written) == {b"pending", b"released", b"unread"}


def test_the_sweep_drops_archived_buckets_past_the_tables_max_age(
        monkeypatch: pytest.MonkeyPatch) -> None:
    table = ledger(record(b"8-days", "sent", 8 * DAY_S - 2 * 3600),
                   record(b"2-days", "sent", 2 * DAY_S))
    # 8 days and a bucket (BUCKET_S) on: its whole bucket is past, wherever it began in it.
    later = time.time() + 2 * 3600 + BUCKET_S + SWEEP_EVERY_S
    monkeypatch.setattr(time, "time", lambda: later)
    table._drop_expired()
    assert read(table, b"8-days") is None and read(table, b"2-days") == ("sent", False)
    assert len(table) == 1


@pytest.mark.parametrize(("records", "expected"), [
    # Archived in partition 0; the same id in partition 6 (the topic gained partitions), whole.
    ([("sent", 0, DAY_S), ("pending", 6, 60)], ("sent", False)),
    ([("failed", 0, DAY_S), ("released", 6, 60)], ("failed", False)),
    ([("pending", 0, 60), ("sent", 6, DAY_S)], ("sent", False)),
    # Both final: the whole one, with its result.
    ([("sent", 0, DAY_S), ("failed", 6, 60)], ("failed", True)),
    ([("failed", 6, DAY_S), ("sent", 0, 60)], ("sent", True)),
    # In one partition, a later whole record is the partition's record unless the archived
    # outcome stands against it (as ledger_stands keeps an outcome against a late pending).
    ([("sent", 0, DAY_S), ("sent", 0, 60)], ("sent", True)),
    ([("sent", 0, DAY_S), ("pending", 0, 60)], ("sent", False)),
    # Both archived: one of the two outcomes.
    ([("sent", 0, 2 * DAY_S), ("sent", 6, DAY_S)], ("sent", False)),
])
def test_an_archived_entry_and_another_read_as_the_one_that_supersedes(
        records: list[tuple[str, int, float]], expected: tuple[str, bool]) -> None:
    for looked_between in (False, True):
        table = ledger()
        for state, partition, age_s in records:
            table._apply(record(b"id", state, age_s, partition))
            if looked_between:
                table.get(b"id")
        assert read(table, b"id") == expected


@pytest.mark.parametrize(("local", "expected"), [
    ("sent", ("sent", True)),  # written now: the key's latest, with its result
    ("failed", ("failed", True)),
    ("pending", ("sent", False)),  # never written over an outcome: the outcome stands
])
def test_a_local_write_of_an_archived_key(local: str, expected: tuple[str, bool]) -> None:
    table = ledger(record(b"id", "sent", DAY_S))
    table.put_local(b"id", entry(local))
    assert read(table, b"id") == expected


def test_a_tombstone_removes_the_archived_entry_of_its_partition() -> None:
    table = ledger(record(b"a", "sent", DAY_S, partition=0), record(b"a", "failed", DAY_S, 6),
                   record(b"b", "sent", DAY_S))
    table._apply(record(b"a", None, 0, partition=0))
    assert read(table, b"a") == ("failed", False)  # partition 6's is still there
    table._apply(record(b"a", None, 0, partition=6))
    assert read(table, b"a") is None and read(table, b"b") == ("sent", False)
    assert len(table) == 1


@pytest.mark.parametrize(("records", "ids"), [
    # Archived in partition 0, and whole in partition 6 (the topic gained partitions).
    ([(b"id", "sent", 0, DAY_S), (b"id", "pending", 6, 60)], 1),
    # Archived, then read again in a state kept whole, in its partition.
    ([(b"id", "sent", 0, DAY_S), (b"id", "released", 0, DAY_S - 60)], 1),
    # Archived from two partitions' records in one bucket.
    ([(b"id", "sent", 0, DAY_S), (b"id", "failed", 6, DAY_S - 60)], 1),
    # Archived in two buckets (written again hours apart), from one partition or two.
    ([(b"id", "sent", 0, 2 * DAY_S), (b"id", "sent", 0, DAY_S)], 1),
    ([(b"id", "sent", 0, 2 * DAY_S), (b"id", "failed", 6, DAY_S), (b"b", "sent", 6, DAY_S)],
     2),
    ([(b"id", "sent", 0, DAY_S), (b"other", "sent", 0, DAY_S), (b"new", "sent", 0, 60)], 3),
])
def test_len_counts_each_id_once_whole_archived_or_both(
        records: list[tuple[bytes, str, int, float]], ids: int) -> None:
    table = ledger(*(record(key, state, age_s, partition)
                     for key, state, partition, age_s in records))
    assert len(table) == ids


def test_len_with_the_same_id_written_as_another_held_here() -> None:
    table = ledger(record(b"id", "sent", DAY_S))
    table.put_local(b"id", entry("sent"))  # written again, not read back yet
    assert len(table) == 1
