"""A key we wrote ourselves (put_local), then read back from the topic: settled when read, so
the table holds one copy of it, not the written value and the read record both until the key
expires (the sender's ledger held both for every command it sent: about 3.5 KB each)."""

from __future__ import annotations

from typing import Any

import pytest

from consumers.ledger import LedgerEntry, decode_ledger, ledger_stands
from consumers.table import CompactedTable
from tests.unit.test_compacted_table import FakeRecord, table_of


def held_copies(table: CompactedTable[Any], key: bytes) -> int:
    """How many values of `key` the table keeps (written, read and decoded, read as is)."""
    return (key in table._local) + sum(key in values for values in table._values.values()) \
        + sum(key in raw for raw in table._undecoded.values())


def test_a_write_read_back_is_held_once_as_the_bytes_read() -> None:
    table, _ = table_of()
    for n in range(100):
        table.put_local(b"%d" % n, n)
    for n in range(100):
        table._apply(FakeRecord(b"%d" % n, b"%d" % n, offset=n))
    assert [held_copies(table, b"%d" % n) for n in range(100)] == [1] * 100
    assert all(b"%d" % n in table._undecoded[0] for n in range(100))  # the bytes only
    assert table.get(b"7") == 7
    assert len(table) == 100


def test_a_write_read_back_late_under_a_newer_one_leaves_the_newer_standing() -> None:
    """The sender's "pending" mark, read back after it put the outcome: the outcome stands,
    until its own record is read back."""
    table: CompactedTable[LedgerEntry] = CompactedTable("unused:9092", "topic", decode_ledger,
                                                        stands=ledger_stands)
    pending, failed = LedgerEntry(state="pending"), LedgerEntry(state="failed")
    table.put_local(b"id", failed)
    table._apply(FakeRecord(b"id", pending.model_dump_json().encode()))
    assert table.get(b"id") == failed
    table._apply(FakeRecord(b"id", failed.model_dump_json().encode(), offset=1))
    assert held_copies(table, b"id") == 1
    assert b"id" not in table._local
    assert table.get(b"id") == failed


def test_an_unreadable_record_read_back_keeps_the_written_value_and_is_logged(
        caplog: pytest.LogCaptureFixture) -> None:
    table, _ = table_of()
    table.put_local(b"a", 5)
    table._apply(FakeRecord(b"a", b"not a number"))
    assert table.get(b"a") == 5
    assert "table record ignored" in caplog.text


def test_an_unreadable_record_logs_its_key_masked(caplog: pytest.LogCaptureFixture) -> None:
    # The whole key was logged: a table keyed by contact (as the opt-out list's
    # `account|contact`) would have put the contact's number in the log.
    table, _ = table_of()
    table._apply(FakeRecord(b"acme|+41790000001", b"not a number"))
    assert table.get(b"acme|+41790000001") is None
    assert "table record ignored" in caplog.text
    assert "+41790000001" not in caplog.text
    assert "acme***01" in caplog.text
