"""A key with records in two partitions of a table's topic, as after partitions were added to it
(kafka-topics.sh --alter: the key hashed to another partition from then on; compaction never
reconciles the two): the opt-out list and the sender's ledger read the same whatever order the
partitions come in, and whether or not the key was looked up in between. The table kept the
last record it read, so a STOP undone by a later START could read as opted out after a restart,
or a START undone by a later STOP as opted in (the real broker:
tests/integration/test_table_partitions_rule.py)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest

from consumers.bots.optouts import OptOutList, OptOutState, decode_opt_out, opt_out_key
from consumers.handling import Record
from consumers.ledger import LedgerEntry, decode_ledger, ledger_stands
from consumers.table import CompactedTable
from switchboard.commands import OutboundResult, ResultStatus
from switchboard.topics import OPT_OUTS, OUTBOUND_SENT

V = TypeVar("V")
CONTACT = "+41790000001"
KEY = opt_out_key("acme", CONTACT)
AT = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
# Each partition's records, in their order there: the table must read the same from them
# whichever partition it reads first, and whether it was asked between two records.
Partitions = dict[int, list[bytes | None]]


@dataclass
class Read:
    """A record as the table's reader hands it over (None: a tombstone)."""

    key: bytes
    value: bytes | None
    partition: int
    offset: int
    timestamp: int = 0


def change(opted_out: bool, minutes: int, source: str = "test") -> bytes:
    return OptOutState(account="acme", contact=CONTACT, opted_out=opted_out, source=source,
                       at=AT + timedelta(minutes=minutes)).model_dump_json().encode()


def interleavings(partitions: Partitions) -> list[list[tuple[int, bytes | None]]]:
    """Every order a reader may hand the records in: each partition's own order kept."""
    tagged = [(p, value) for p, values in partitions.items() for value in values]
    orders = []
    for order in itertools.permutations(range(len(tagged))):
        records = [tagged[i] for i in order]
        if all([v for q, v in records if q == p] == values for p, values in partitions.items()):
            orders.append(records)
    return orders


def read_all_ways(make: Callable[[], CompactedTable[V]], key: bytes,
                  partitions: Partitions) -> list[V | None]:
    """The key's value after every interleaving, each with the key looked up only at the end
    (one fetch) and after every record (a fetch each, looked up between)."""
    seen: list[V | None] = []
    for records in interleavings(partitions):
        for look_between in (False, True):
            table = make()
            for offset, (partition, value) in enumerate(records):
                table._apply(Read(key, value, partition, offset))
                if look_between:
                    table.get(key)
            seen.append(table.get(key))
    return seen


def opt_outs_read(partitions: Partitions) -> list[OptOutState | None]:
    return read_all_ways(lambda: CompactedTable("unused:9092", OPT_OUTS.name, decode_opt_out),
                         KEY, partitions)


def opted_out(states: Sequence[OptOutState | None]) -> set[bool | None]:
    return {None if state is None else state.opted_out for state in states}


def test_an_opt_in_after_an_opt_out_stands_whichever_partition_is_read_first() -> None:
    # Opted out under the old partition count (partition 0), back in under the new (6).
    seen = opt_outs_read({0: [change(True, 0)], 6: [change(False, 5)]})
    assert opted_out(seen) == {False}


def test_an_opt_out_after_an_opt_in_stands_whichever_partition_is_read_first() -> None:
    # A STOP lost at a restart: the compliance side of the same bug.
    seen = opt_outs_read({0: [change(False, 0)], 6: [change(False, 1), change(True, 5)]})
    assert opted_out(seen) == {True}
    seen = opt_outs_read({2: [change(True, 5)], 6: [change(False, 0)]})
    assert opted_out(seen) == {True}


def test_at_the_same_time_in_two_partitions_the_opt_out_stands() -> None:
    assert opted_out(opt_outs_read({0: [change(True, 0)], 6: [change(False, 0)]})) == {True}
    assert opted_out(opt_outs_read({0: [change(False, 0)], 6: [change(True, 0)]})) == {True}


def test_the_same_state_in_two_partitions_reads_the_same_either_way() -> None:
    seen = opt_outs_read({0: [change(True, 0, "keyword")], 6: [change(True, 0, "import")]})
    assert len({state.source for state in seen if state is not None}) == 1


def test_within_a_partition_the_last_record_stands_whatever_its_at() -> None:
    # What Kafka's compaction keeps: the newer `at` written before it is gone once the
    # partition is compacted, so a table preferring it would change its answer at a restart.
    seen = opt_outs_read({0: [change(False, 5), change(True, 0, "import")]})
    assert {(s.opted_out, s.source) for s in seen if s is not None} == {(True, "import")}
    assert None not in seen


def test_a_tombstone_drops_its_partitions_record_only() -> None:
    # As Kafka does: the STOP in partition 0 is still there for every later start.
    seen = opt_outs_read({0: [change(True, 0)], 6: [change(False, 5), None]})
    assert opted_out(seen) == {True}
    seen = opt_outs_read({0: [change(True, 0), None], 6: [change(False, 5), None]})
    assert seen == [None] * len(seen)


def test_the_opt_out_list_sees_the_newest_change_of_a_key_in_two_partitions() -> None:
    table = CompactedTable("unused:9092", OPT_OUTS.name, decode_opt_out)
    opt_outs = OptOutList(table)
    table._apply(Read(KEY, change(False, 5), 6, 0))
    table._apply(Read(KEY, change(True, 0), 0, 0))
    assert not opt_outs.is_opted_out("acme", CONTACT)
    assert opt_outs.superseded("acme", CONTACT, AT + timedelta(minutes=1))


def mark(state: str) -> bytes:
    result = None
    if state in ("sent", "failed"):
        result = OutboundResult(command_id="cmd-1", account="acme", provider="infobip",
                                to=CONTACT, attempts=1, completed_at=AT,
                                status=ResultStatus.ACCEPTED if state == "sent"
                                else ResultStatus.FAILED)
    return LedgerEntry.model_validate({"state": state, "result": result}).model_dump_json(
        ).encode()


def ledger_read(partitions: Partitions) -> set[str | None]:
    seen = read_all_ways(lambda: CompactedTable("unused:9092", OUTBOUND_SENT.name, decode_ledger,
                                                stands=ledger_stands), b"cmd-1", partitions)
    return {None if entry is None else entry.state for entry in seen}


@pytest.mark.parametrize(("partitions", "state"), [
    # Given back unsent before the partitions were added, then sent: not sent again.
    ({0: [mark("pending"), mark("released")], 6: [mark("pending"), mark("sent")]}, "sent"),
    # ... or the sender died while sending it: outcome unknown, never sent again.
    ({0: [mark("pending"), mark("released")], 6: [mark("pending")]}, "pending"),
    # Found pending and reported outcome_unknown under the new count.
    ({0: [mark("pending")], 6: [mark("failed")]}, "failed"),
])
def test_the_ledger_reads_a_command_in_two_partitions_the_same_either_way(
        partitions: Partitions, state: str) -> None:
    assert ledger_read(partitions) == {state}


def test_a_key_in_one_partition_is_decoded_only_when_asked_for() -> None:
    decoded: list[bytes] = []

    def counting(value: bytes) -> int:
        decoded.append(value)
        return int(value)

    table = CompactedTable("unused:9092", "topic", counting)
    for partition, key, value in ((0, b"a", b"1"), (1, b"b", b"2"), (0, b"a", b"3"),
                                  (1, b"a", b"4")):
        table._apply(Record("topic", partition, 0, key, value, ()))
    assert len(table) == 2
    assert table.get(b"a") in (3, 4) and sorted(decoded) == [b"3", b"4"]  # each partition's last
    assert table.get(b"a") == table.get(b"a") and len(decoded) == 2
