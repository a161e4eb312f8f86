"""A contact's STOPs and STARTs of one time (one webhook that gives no times: its events share
the time it was received; one second of a provider that gives whole seconds), handled in
order: their last word stands. The messages' places in their partition of the inbound topic
tell a redelivery, or a second bot worker behind the first, from the contact's next message
(README, *Bots*)."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consumers.bots.handler import BotHandler, keywords_answer
from consumers.bots.opt_out_change import AGAINST, TIED_STOP, plan_change
from consumers.bots.optouts import OptOutState, Position, decode_opt_out, opt_out_key
from consumers.handling import Record
from switchboard.events import MessageEvent
from switchboard.topics import MESSAGE_INBOUND, OPT_OUTS
from tests.unit.fakes import FakeContext
from tests.unit.test_bot_handler import commands, handler, kinds, opt_out_changes

CONTACT = "+4179000111"
SENT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
OFFSETS: Iterator[int] = itertools.count(1000)  # the contact's partition, in ingest's order


def message(text: str, occurred_at: datetime | None, received_at: datetime) -> Record:
    """A contact's message as ingest publishes it (a new event id each), at the next offset of
    the contact's partition."""
    event_id = uuid.uuid4()
    event = MessageEvent.model_validate({
        "id": event_id, "type": "message.inbound", "provider": "infobip", "account": "acme",
        "channel": "sms", "direction": "inbound", "from": CONTACT, "to": "+15550000000",
        "message_id": str(event_id), "text": text, "occurred_at": occurred_at,
        "received_at": received_at, "raw_id": str(uuid.uuid4())})
    return Record(MESSAGE_INBOUND.name, 3, next(OFFSETS), b"k", event.to_json())


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


async def test_a_redelivered_stop_of_the_time_of_the_start_after_it_is_not_applied(
        tmp_path: Any) -> None:
    """A STOP handled again after the START of the same time that followed it (a restart
    before the commit) is at an earlier offset than that START: not applied, not confirmed,
    and the contact stays in. It opted them out again, confirmed, until they sent START."""
    bot = handler(tmp_path, keywords_answer)
    stop, start = one_request("STOP", "START")
    await handled(bot, [stop, start])
    assert not bot.opt_outs.is_opted_out("acme", CONTACT)
    [again] = await handled(bot, [stop])
    assert (opt_out_changes(again), kinds(again)) == ([], [])
    assert not bot.opt_outs.is_opted_out("acme", CONTACT)


@pytest.mark.parametrize("sent", [one_request, one_second])
async def test_the_last_start_of_stop_start_stop_start_of_one_time_opts_in(
        tmp_path: Any, sent: Any) -> None:
    """It could not be told from the first START handled again, and stayed unapplied: the
    contact who wrote START last stayed out."""
    bot = handler(tmp_path, keywords_answer)
    contexts = await handled(bot, sent("STOP", "START", "STOP", "START"))
    assert [opt_out_changes(ctx) for ctx in contexts] == [[True], [False], [True], [False]]
    assert kinds(contexts[-1]) == ["message"]  # the start confirmation ("welcome back")
    assert not bot.opt_outs.is_opted_out("acme", CONTACT)
    assert stored(bot).at == SENT + timedelta(microseconds=3)
    assert stored(bot).made_at == SENT


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


SEQUENCES = [words for size in range(1, 6)
             for words in itertools.product(("STOP", "START"), repeat=size)]


@pytest.mark.parametrize("words", SEQUENCES, ids="-".join)
async def test_the_last_word_of_one_time_stands_whatever_is_handled_again(
        tmp_path: Any, words: tuple[str, ...]) -> None:
    """Every sequence of up to five STOPs and STARTs of one time, handled in order, then
    again from each of its messages on (a redelivery after a restart): the contact is as
    their last word says after each pass, and nothing handled again is written again."""
    records = one_request(*words)
    bot = handler(tmp_path, keywords_answer)
    await handled(bot, records)
    last_word_out = words[-1] == "STOP"
    assert bot.opt_outs.is_opted_out("acme", CONTACT) == last_word_out
    for start in range(len(records)):
        again = await handled(bot, records[start:])
        assert bot.opt_outs.is_opted_out("acme", CONTACT) == last_word_out, f"from {start}"
        assert [opt_out_changes(ctx) for ctx in again] == [[]] * len(again), f"from {start}"


def read_by(bot: BotHandler, published: list[FakeContext]) -> None:
    """The opt-out topic's records of those changes, read by `bot`'s table in order."""
    values = [r.value for ctx in published for r in ctx.published if r.topic == OPT_OUTS.name]
    for offset, value in enumerate(values):
        bot.opt_outs.table._apply(Record(OPT_OUTS.name, 0, offset,
                                         opt_out_key("acme", CONTACT), value))


@pytest.mark.parametrize("words", [w for w in SEQUENCES if len(w) > 1], ids="-".join)
async def test_a_second_bot_worker_behind_the_first_ends_where_it_did(
        tmp_path: Any, words: tuple[str, ...]) -> None:
    """Two bot workers (keywords and auto-reply, say) each handle every message; the second,
    behind, handles them once the first's changes are in its list. It ends with the contact
    where the first left them, writes no change, and makes no confirmation the first did not
    (the same ids: the sender sends each once). STOP then START left the contact out."""
    records = one_request(*words)
    (tmp_path / "first").mkdir()
    first = handler(tmp_path / "first", keywords_answer)
    first_made = await handled(first, records)
    second = handler(tmp_path, keywords_answer)
    read_by(second, first_made)
    second_made = await handled(second, records)
    assert second.opt_outs.is_opted_out("acme", CONTACT) == (words[-1] == "STOP")
    assert [opt_out_changes(ctx) for ctx in second_made] == [[]] * len(records)
    first_ids = {c["id"] for ctx in first_made for c in commands(ctx)}
    assert {c["id"] for ctx in second_made for c in commands(ctx)} <= first_ids


RESTAMPED_START = OptOutState(account="acme", contact=CONTACT, opted_out=False,
                              source="keyword:START", at=SENT + timedelta(microseconds=1),
                              made_at=SENT,
                              from_=Position(MESSAGE_INBOUND.name, 3, 1001))


@pytest.mark.parametrize(("known", "stop_at", "position", "expected"), [
    # Where positions do not tell, the rules by time alone: the STOP wins the tie.
    (RESTAMPED_START.model_copy(update={"from_": None}), SENT,  # written before positions
     Position(MESSAGE_INBOUND.name, 3, 1000), TIED_STOP),
    (RESTAMPED_START, SENT, Position(MESSAGE_INBOUND.name, 4, 1000),  # partitions added
     TIED_STOP),
    (RESTAMPED_START, SENT, Position("other.topic", 3, 1000), TIED_STOP),
    (RESTAMPED_START, SENT, None, TIED_STOP),
    # Positions tell: the STOP came before that START (handled again).
    (RESTAMPED_START, SENT, Position(MESSAGE_INBOUND.name, 3, 1000), AGAINST),
    # Contact time first: a provider's retry of an older STOP, stored later, stays old.
    (RESTAMPED_START, SENT - timedelta(seconds=1), Position(MESSAGE_INBOUND.name, 3, 1002),
     AGAINST),
])
def test_positions_order_only_changes_of_one_time_in_one_partition(
        known: OptOutState, stop_at: datetime, position: Position | None,
        expected: str) -> None:
    plan = plan_change(known, True, stop_at, position)
    assert (plan.apply, plan.reason) == (expected == TIED_STOP, expected)


def test_a_position_that_does_not_read_is_ignored_not_the_change() -> None:
    """Only the bots write it; another tool's record with a bad one still says the state."""
    value = RESTAMPED_START.model_dump_json().replace("/3/1001", "/3/x")
    assert b'"from":"' + MESSAGE_INBOUND.name.encode() + b'/3/1001"' \
        in RESTAMPED_START.model_dump_json().encode()
    read = decode_opt_out(value.encode())
    assert (read.from_, read.opted_out, read.made_at) == (None, False, SENT)
