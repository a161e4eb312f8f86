"""The sender's and bots' opt-out list at a tie: a STOP and a START of one `at` (START then STOP
in one second of a provider that gives whole seconds, or one webhook without times: the STOP
is stamped with their common time, and the opt-out wins the tie). A change met early (on the
outbound topic, or made by this process) must read at once, whatever the table holds."""

from __future__ import annotations

from datetime import UTC, datetime

from consumers.bots.optouts import OptOutList, OptOutState, decode_opt_out, opt_out_key
from consumers.table import CompactedTable
from switchboard.topics import OPT_OUTS

CONTACT = "+4179000111"
AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def change(opted_out: bool) -> OptOutState:
    return OptOutState(account="acme", contact=CONTACT, opted_out=opted_out,
                       source="keyword:STOP" if opted_out else "keyword:START", at=AT)


def listing(held: OptOutState) -> OptOutList:
    """The list whose table has read `held` as the contact's record."""
    table = CompactedTable("unused:9092", OPT_OUTS.name, decode_opt_out)
    table.put_local(opt_out_key("acme", CONTACT), held)
    return OptOutList(table)


def test_a_stop_met_early_of_the_time_of_the_start_held_reads_at_once() -> None:
    """It was taken as read already (the table's `at` no older) and dropped: the contact read
    as opted in, and the sender sent the commands after the STOP on the outbound topic, until
    its table read the STOP."""
    opt_outs = listing(change(False))
    opt_outs.remember(change(True).model_dump_json().encode())
    assert opt_outs.is_opted_out("acme", CONTACT)
    assert opt_outs.is_opted_out("acme", CONTACT)  # and again: still ahead of the table
    opt_outs.table.put_local(opt_out_key("acme", CONTACT), change(True))  # the table reads it
    assert opt_outs.is_opted_out("acme", CONTACT)
    assert opt_outs._ahead == {}


def test_a_start_met_early_of_the_time_of_a_stop_known_does_not_undo_it() -> None:
    opt_outs = listing(change(False))
    opt_outs.remember(change(True).model_dump_json().encode())
    opt_outs.remember(change(False).model_dump_json().encode())  # older at the tie
    assert opt_outs.is_opted_out("acme", CONTACT)
