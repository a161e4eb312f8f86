"""An opt-out record that cannot be read (cut short, not JSON) reads as opted out until a
readable newer change of its contact: read as "not opted out" (the START before it, or no
record), a STOP cut short would have the contact messaged."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest

from consumers.bots.opt_out_change import plan_change
from consumers.bots.optouts import (
    EPOCH,
    UNREADABLE_SOURCE,
    OptOutList,
    OptOutState,
    decode_opt_out,
)
from consumers.table import CompactedTable
from switchboard.topics import OPT_OUTS
from tests.unit.test_table_across_partitions import (
    AT,
    CONTACT,
    KEY,
    Partitions,
    Read,
    change,
    interleavings,
)

CUT_SHORT = change(True, 2)[:40]  # a STOP cut short: `{"account":"acme","contact":"+4179...`


def ms(minutes: int) -> int:
    """A record's write time (Kafka's, in ms), `minutes` after AT."""
    return int((AT + timedelta(minutes=minutes)).timestamp() * 1000)


def opt_outs_of(*records: Read) -> OptOutList:
    table = CompactedTable("unused:9092", OPT_OUTS.name, decode_opt_out)
    for record in records:
        table._apply(record)
    return OptOutList(table)


def test_a_cut_short_record_after_an_opt_in_reads_as_opted_out() -> None:
    opt_outs = opt_outs_of(Read(KEY, change(False, 0), 0, 0, ms(0)),
                           Read(KEY, CUT_SHORT, 0, 1, ms(2)))
    assert opt_outs.is_opted_out("acme", CONTACT)
    state = opt_outs.state("acme", CONTACT)
    assert state is not None
    assert (state.account, state.contact, state.source) == ("acme", CONTACT, UNREADABLE_SOURCE)
    assert state.at == EPOCH


@pytest.mark.parametrize("value", [b"", b"not json", b"{}", b'{"account":"acme"}', b"\xff\xfe"])
def test_a_contact_whose_only_record_cannot_be_read_reads_as_opted_out(value: bytes) -> None:
    assert opt_outs_of(Read(KEY, value, 0, 0, ms(0))).is_opted_out("acme", CONTACT)


def test_the_same_record_read_after_the_contact_was_looked_up_replaces_what_was_read() -> None:
    table = CompactedTable("unused:9092", OPT_OUTS.name, decode_opt_out)
    opt_outs = OptOutList(table)
    table._apply(Read(KEY, change(False, 0), 0, 0, ms(0)))
    assert not opt_outs.is_opted_out("acme", CONTACT)  # decoded: held as a value
    table._apply(Read(KEY, CUT_SHORT, 0, 1, ms(2)))
    assert opt_outs.is_opted_out("acme", CONTACT)


def test_a_readable_change_after_it_in_its_partition_replaces_it() -> None:
    opt_outs = opt_outs_of(Read(KEY, CUT_SHORT, 0, 0, ms(2)),
                           Read(KEY, change(False, 3), 0, 1, ms(3)))
    assert not opt_outs.is_opted_out("acme", CONTACT)


def read_all_ways(partitions: dict[int, list[tuple[bytes, int]]]) -> set[bool | None]:
    """Whether the contact reads as opted out, for every order the partitions' records may
    be read in (each partition's own order kept), looked up at the end and between records."""
    tagged: Partitions = {p: [value for value, _ in records] for p, records in partitions.items()}
    written = {(p, value): at for p, records in partitions.items() for value, at in records}
    seen: set[bool | None] = set()
    for order in interleavings(tagged):
        for look_between in (False, True):
            table = CompactedTable("unused:9092", OPT_OUTS.name, decode_opt_out)
            for offset, (p, value) in enumerate(order):
                assert value is not None
                table._apply(Read(KEY, value, p, offset, written[p, value]))
                if look_between:
                    table.get(KEY)
            state = table.get(KEY)
            seen.add(None if state is None else state.opted_out)
    return seen


def test_in_another_partition_any_readable_change_wins() -> None:
    # The list's topic gained partitions: the key's older records in one, newer in another.
    # The unreadable record is stamped at the epoch (no write time is kept per key), so even
    # an opt-in older than it wins there; in its own partition it still stands (above).
    assert read_all_ways({0: [(change(False, 0), ms(0))], 6: [(CUT_SHORT, ms(2))]}) == {False}
    assert read_all_ways({0: [(CUT_SHORT, ms(2))], 6: [(change(False, 3), ms(3))]}) == {False}
    assert read_all_ways({0: [(CUT_SHORT, ms(2))], 6: [(change(True, 1), ms(1))]}) == {True}


def test_it_is_logged_once_at_error_with_the_contact_masked_and_not_the_value(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    opt_outs = opt_outs_of(Read(KEY, CUT_SHORT, 0, 0, ms(2)))
    for _ in range(3):
        assert opt_outs.is_opted_out("acme", CONTACT)
    lines = [r for r in caplog.records if "opt-out record cannot be read" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelno == logging.ERROR
    assert "acme" in caplog.text and "+417***01" in caplog.text
    assert CONTACT not in caplog.text and CUT_SHORT.decode() not in caplog.text
    assert "table record ignored" not in caplog.text  # which logged the whole key


def test_a_start_after_it_opts_the_contact_back_in_and_help_still_reaches_them() -> None:
    known = opt_outs_of(Read(KEY, CUT_SHORT, 0, 0, ms(2))).state("acme", CONTACT)
    later = AT + timedelta(minutes=3)
    start = plan_change(known, False, later)
    assert (start.apply, start.confirm, start.flips) == (True, True, True)  # "Welcome back"
    assert plan_change(known, None, later).confirm  # HELP
    stop = plan_change(known, True, later)  # written again, readable now: not a change
    assert (stop.apply, stop.flips) == (True, False)


def test_a_change_this_process_made_after_it_stands_until_the_table_reads_it() -> None:
    opt_outs = opt_outs_of(Read(KEY, CUT_SHORT, 0, 0, ms(2)))
    start = OptOutState(account="acme", contact=CONTACT, opted_out=False, source="keyword:START",
                        at=AT + timedelta(minutes=3))
    opt_outs.remember(start.model_dump_json().encode())
    assert not opt_outs.is_opted_out("acme", CONTACT)
