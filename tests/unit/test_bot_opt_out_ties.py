"""A contact's STOPs and STARTs of one time (one webhook that gives no times: its events share
the time it was received; one second of a provider that gives whole seconds), handled in
order: their last STOP is never dropped. Where a redelivery cannot be told from a new message,
the opt-out wins (README, *Bots*)."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consumers.bots.handler import BotHandler, keywords_answer
from consumers.bots.optouts import OptOutState, decode_opt_out
from consumers.handling import Record
from switchboard.events import MessageEvent
from switchboard.topics import OPT_OUTS
from tests.unit.fakes import FakeContext
from tests.unit.test_bot_handler import handler, kinds, opt_out_changes

CONTACT = "+4179000111"
SENT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def message(text: str, occurred_at: datetime | None, received_at: datetime) -> Record:
    """A contact's message as ingest publishes it (a new event id each)."""
    event_id = uuid.uuid4()
    event = MessageEvent.model_validate({
        "id": event_id, "type": "message.inbound", "provider": "infobip", "account": "acme",
        "channel": "sms", "direction": "inbound", "from": CONTACT, "to": "+15550000000",
        "message_id": str(event_id), "text": text, "occurred_at": occurred_at,
        "received_at": received_at, "raw_id": str(uuid.uuid4())})
    return Record("t", 0, 0, b"k", event.to_json())


def one_request(*texts: str) -> list[Record]:
    """The contact's messages in one webhook without times: all stamped when it came."""
    return [message(text, None, SENT) for text in texts]


def one_second(*texts: str) -> list[Record]:
    """Each in a webhook of its own, the provider's time in whole seconds: the same second."""
    return [message(text, SENT, SENT + timedelta(seconds=0.1 * (n + 1)))
            for n, text in enumerate(texts)]


def stored(bot: BotHandler) -> OptOutState:
    state = bot.opt_outs.state("acme", CONTACT)
    assert state is not None
    return state


async def handled(bot: BotHandler, records: list[Record]) -> list[FakeContext]:
    contexts = []
    for one in records:
        contexts.append(FakeContext())
        await bot.handle(one, contexts[-1])
    return contexts


@pytest.mark.parametrize("sent", [one_request, one_second])
async def test_the_last_stop_of_a_stop_start_stop_of_one_time_opts_out(
        tmp_path: Any, sent: Any) -> None:
    """The START was stamped just after the first STOP; the last STOP, stamped with their
    common time, was taken as older than that START, made by the contact: not applied, not
    confirmed. The contact's last word was STOP, and they stayed opted in."""
    bot = handler(tmp_path, keywords_answer)
    stop, start, last = await handled(bot, sent("STOP", "START", "STOP"))
    assert opt_out_changes(stop) == [True] and opt_out_changes(start) == [False]
    # A change stamped with its own time is written as before: no `made_at`.
    assert all(b"made_at" not in r.value for r in stop.published)
    assert (opt_out_changes(last), kinds(last)) == ([True], ["opt-out-confirmation"])
    assert bot.opt_outs.is_opted_out("acme", CONTACT)
    # Wherever the newest `at` wins (the sender's list, another partition of it): the STOP.
    [started] = [decode_opt_out(r.value) for r in start.published if r.topic == OPT_OUTS.name]
    [stopped] = [decode_opt_out(r.value) for r in last.published if r.topic == OPT_OUTS.name]
    assert stopped.supersedes(started)
    # Each keeps the time the contact made it, for the next change of that time.
    assert (started.at, stopped.at) == (SENT + timedelta(microseconds=1),
                                        SENT + timedelta(microseconds=2))
    assert started.made_at == stopped.made_at == SENT


async def test_a_redelivered_stop_of_the_time_of_the_start_after_it_opts_out(
        tmp_path: Any) -> None:
    """The one case the bot cannot tell apart: a STOP handled again after the START of the
    same time that followed it, or a new STOP. It errs on the opt-out (a spare "you are
    unsubscribed" is allowed; a STOP dropped is not): the contact sends START again."""
    bot = handler(tmp_path, keywords_answer)
    stop, start = one_request("STOP", "START")
    await handled(bot, [stop, start])
    assert not bot.opt_outs.is_opted_out("acme", CONTACT)
    [again] = await handled(bot, [stop])
    assert (opt_out_changes(again), kinds(again)) == ([True], ["opt-out-confirmation"])
    assert bot.opt_outs.is_opted_out("acme", CONTACT)
    [welcome] = await handled(bot, [message("START", None, SENT + timedelta(seconds=1))])
    assert opt_out_changes(welcome) == [False]
    assert not bot.opt_outs.is_opted_out("acme", CONTACT)


async def test_a_redelivered_start_of_the_time_of_the_last_stop_stays_unapplied(
        tmp_path: Any) -> None:
    """STOP, START, STOP, and the START handled again: the contact stays out, and is not
    told "welcome back"."""
    bot = handler(tmp_path, keywords_answer)
    stop, start, last = one_request("STOP", "START", "STOP")
    await handled(bot, [stop, start, last])
    [again] = await handled(bot, [start])
    assert (opt_out_changes(again), kinds(again)) == ([], [])
    assert bot.opt_outs.is_opted_out("acme", CONTACT)


async def test_changes_of_one_time_handled_again_are_not_written_twice(tmp_path: Any) -> None:
    """STOP, START, STOP redelivered in order (a restart before the commit): each already
    stored; the contact stays out, as their last word said."""
    bot = handler(tmp_path, keywords_answer)
    records = one_request("STOP", "START", "STOP")
    await handled(bot, records)
    before = stored(bot)
    again = await handled(bot, records)
    assert [opt_out_changes(ctx) for ctx in again] == [[], [], []]
    assert stored(bot) == before and before.opted_out


def stop_after_start_after_stop(words: tuple[str, ...]) -> bool:
    """A STOP, a START later, a STOP later still: that last STOP was stamped after the START
    it followed, and a START after it cannot be told from that START handled again."""
    rest = iter(words)
    return all(word in rest for word in ("STOP", "START", "STOP"))


SEQUENCES = [words for size in range(1, 6)
             for words in itertools.product(("STOP", "START"), repeat=size)]


@pytest.mark.parametrize("words", SEQUENCES, ids="-".join)
async def test_a_last_stop_of_one_time_stands_whatever_is_handled_again(
        tmp_path: Any, words: tuple[str, ...]) -> None:
    """Every sequence of up to five STOPs and STARTs of one time, handled in order, then
    again from each of its messages on (a redelivery after a restart, or a second bot worker
    behind the first): ending in STOP, the contact is out after each pass. A sequence ending
    in START, handled once, leaves them in unless a STOP stamped after a START came before it
    (STOP START STOP START: the last START could be the first one handled again)."""
    records = one_request(*words)
    bot = handler(tmp_path, keywords_answer)
    await handled(bot, records)
    if words[-1] == "STOP":
        assert bot.opt_outs.is_opted_out("acme", CONTACT)
    else:
        assert bot.opt_outs.is_opted_out("acme", CONTACT) == stop_after_start_after_stop(
            words[:-1])
    for start in range(len(records)):
        await handled(bot, records[start:])
        if words[-1] == "STOP":
            assert bot.opt_outs.is_opted_out("acme", CONTACT), f"again from {start}"
