"""An opt-out change older than the contact's known state is not applied (the newer `at`
wins): its confirmation must not say it was."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from consumers.bots.handler import keywords_answer
from consumers.bots.optouts import OptOutList, OptOutState, decode_opt_out, opt_out_key
from consumers.handling import Record
from consumers.table import CompactedTable
from switchboard.topics import OPT_OUTS, OUTBOUND
from tests.unit.fakes import FakeContext
from tests.unit.test_bot_handler import (
    bird_opt_out_report,
    commands,
    handler,
    kinds,
    opt_out_changes,
    record,
)

CONTACT = "+4179000111"


async def test_a_start_older_than_a_provider_opt_out_is_not_welcomed_back(
        tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    """The START was sent before the message the provider reported opted out, and reached
    the bot after that report: the contact stays opted out, and "Welcome back" was sent."""
    bot = handler(tmp_path, keywords_answer)
    await bot.handle(record("STOP"), FakeContext())
    start = record("START")  # stamped now
    await bot.handle(bird_opt_out_report(datetime.now(UTC)), FakeContext())  # later
    ctx = FakeContext()
    await bot.handle(start, ctx)
    assert (commands(ctx), opt_out_changes(ctx)) == ([], [])
    assert bot.opt_outs.is_opted_out("acme", CONTACT)
    assert "not applied, not confirmed" in caplog.text
    assert CONTACT not in caplog.text


async def test_a_stop_older_than_a_start_handled_first_is_not_confirmed(tmp_path: Any) -> None:
    """The contact stays subscribed: "You are unsubscribed" would be a lie they act on."""
    bot = handler(tmp_path, keywords_answer)
    stop = record("STOP")
    await bot.handle(record("START"), FakeContext())  # later, handled first
    ctx = FakeContext()
    await bot.handle(stop, ctx)
    assert (commands(ctx), opt_out_changes(ctx)) == ([], [])
    assert not bot.opt_outs.is_opted_out("acme", CONTACT)


async def test_an_older_change_the_known_state_agrees_with_is_answered_as_a_repeat(
        tmp_path: Any) -> None:
    """A STOP older than a provider's opt-out: the contact is out, as it says. Answered as a
    STOP from a contact already out is (within compliance_reply_limit), nothing published."""
    bot = handler(tmp_path, keywords_answer)
    stop = record("STOP")
    await bot.handle(bird_opt_out_report(datetime.now(UTC)), FakeContext())
    ctx = FakeContext()
    await bot.handle(stop, ctx)
    assert (kinds(ctx), opt_out_changes(ctx)) == (["opt-out-confirmation"], [])


def imported(table: CompactedTable[OptOutState], opted_out: bool, at: datetime,
             source: str = "import:crm") -> None:
    """A change written straight to the opt-out topic (README: an import), as a table has
    read it."""
    state = OptOutState(account="acme", contact=CONTACT, opted_out=opted_out, source=source,
                        at=at)
    table.put_local(opt_out_key("acme", CONTACT), state)


def published_changes(ctx: FakeContext) -> list[OptOutState]:
    return [decode_opt_out(r.value) for r in ctx.published if r.topic == OPT_OUTS.name]


async def test_a_stop_older_than_an_imported_opt_in_is_applied_and_confirmed(
        tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    """The contact texted STOP; an opt-in list imported while the bot was behind, stamped
    with the import's time, said nothing of that STOP: it was neither applied nor confirmed,
    and the contact went on getting messages. Applied over it, stamped just after it, so that
    the sender's list (the newest `at` wins) takes it too."""
    bot = handler(tmp_path, keywords_answer)
    stop = sent_ago("STOP", 60)
    opt_in_at = datetime.now(UTC) - timedelta(seconds=30)
    imported(bot.opt_outs.table, False, opt_in_at)
    ctx = FakeContext()
    await bot.handle(stop, ctx)
    changes = published_changes(ctx)
    assert [c.opted_out for c in changes] == [True]
    assert changes[0].at > opt_in_at
    assert kinds(ctx) == ["opt-out-confirmation"]
    assert bot.opt_outs.is_opted_out("acme", CONTACT)
    # What the sender does with the outbound copy: its list, holding the import, takes it.
    sender_list = OptOutList(CompactedTable("unused:9092", OPT_OUTS.name, decode_opt_out))
    imported(sender_list.table, False, opt_in_at)
    copy = next(r for r in ctx.published if r.topic == OUTBOUND.name
                and r.value == changes[0].model_dump_json().encode())
    sender_list.remember(copy.value)
    assert sender_list.is_opted_out("acme", CONTACT)
    assert "applied, confirmed" in caplog.text and CONTACT not in caplog.text

    ctx = FakeContext()  # handled again (a redelivery): the contact is out, as it says
    await bot.handle(stop, ctx)
    assert (kinds(ctx), opt_out_changes(ctx)) == (["opt-out-confirmation"], [])

    ctx = FakeContext()  # the contact's own START, sent after all that, opts them in
    await bot.handle(record("START"), ctx)
    assert opt_out_changes(ctx) == [False]
    assert not bot.opt_outs.is_opted_out("acme", CONTACT)


def sent_ago(text: str, seconds: float) -> Record:
    """A message the gateway received `seconds` ago, handled now (the bot was behind)."""
    event = orjson.loads(record(text).value)
    event["received_at"] = (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat()
    return Record("t", 0, 0, b"k", orjson.dumps(event))


async def test_a_stop_older_than_the_contacts_own_later_start_stays_unapplied(
        tmp_path: Any) -> None:
    """Their START, sent after the STOP (to another provider's number; or handled first by
    another bot process, that was ahead) is their latest word: read in the table as the bots
    record it, it stands."""
    bot = handler(tmp_path, keywords_answer)
    stop = sent_ago("STOP", 60)
    imported(bot.opt_outs.table, False, datetime.now(UTC) - timedelta(seconds=30),
             source="keyword:START")
    ctx = FakeContext()
    await bot.handle(stop, ctx)
    assert (commands(ctx), opt_out_changes(ctx)) == ([], [])
    assert not bot.opt_outs.is_opted_out("acme", CONTACT)


async def test_a_start_older_than_an_imported_opt_out_stays_unapplied(tmp_path: Any) -> None:
    """Only a STOP is applied over a newer change it did not see: a late START against an
    imported suppression list is not (the contact can send START again)."""
    bot = handler(tmp_path, keywords_answer)
    start = sent_ago("START", 60)
    imported(bot.opt_outs.table, True, datetime.now(UTC) - timedelta(seconds=30),
             source="import:dnc")
    ctx = FakeContext()
    await bot.handle(start, ctx)
    assert (commands(ctx), opt_out_changes(ctx)) == ([], [])
    assert bot.opt_outs.is_opted_out("acme", CONTACT)


async def test_a_provider_opt_out_stamped_ahead_does_not_hold_back_a_later_start(
        tmp_path: Any) -> None:
    """A report's time is the provider's: one written in its local time without an offset is
    read as UTC, hours ahead of ours. It counts as no later than it reached us: a START
    the contact sends after it opts them back in."""
    bot = handler(tmp_path, keywords_answer)
    await bot.handle(bird_opt_out_report(datetime.now(UTC) + timedelta(hours=3)), FakeContext())
    assert bot.opt_outs.is_opted_out("acme", CONTACT)
    ctx = FakeContext()
    await bot.handle(record("START"), ctx)
    assert (kinds(ctx), opt_out_changes(ctx)) == (["message"], [False])
    assert not bot.opt_outs.is_opted_out("acme", CONTACT)


async def test_a_change_another_bot_worker_stored_is_not_written_again(tmp_path: Any) -> None:
    """`worker keywords` and `worker bot` both handle the contact's STOP, then START. The one
    behind, its table holding the other's STOP but not yet its START, wrote the STOP again:
    after that START in the partition, so the table's latest, and the contact read as out
    (the sender refusing them) until it handled the START too."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ahead, behind = handler(tmp_path / "a", keywords_answer), handler(tmp_path / "b",
                                                                      keywords_answer)
    stop, start = record("STOP"), record("START")
    first = FakeContext()
    await ahead.handle(stop, first)
    await ahead.handle(start, FakeContext())
    [stored] = published_changes(first)
    behind.opt_outs.table.put_local(opt_out_key("acme", CONTACT), stored)
    ctx = FakeContext()
    await behind.handle(stop, ctx)
    assert opt_out_changes(ctx) == []
    assert [c["id"] for c in commands(ctx)] == [c["id"] for c in commands(first)]  # sent once

    again = FakeContext()  # a redelivery to the worker that stored it: not written again
    await ahead.handle(start, again)
    assert (opt_out_changes(again), kinds(again)) == ([], ["message"])
