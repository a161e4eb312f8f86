"""A provider's retry of a webhook is the same message received again later: its STOP or START
must not undo the contact's change made in between."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consumers.bots.handler import keywords_answer
from consumers.handling import Record
from switchboard.events import MessageEvent
from tests.unit.fakes import FakeContext
from tests.unit.test_bot_handler import commands, handler, opt_out_changes

CONTACT = "+4179000111"
SENT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # when the contact sent the first message


def message(text: str, event_id: uuid.UUID, occurred_at: datetime | None,
            received_at: datetime) -> Record:
    """A contact's message as ingest publishes it: the event id is made from the provider's
    message id (and time), so a retry of its webhook gives the same id, received later."""
    event = MessageEvent.model_validate({
        "id": event_id, "type": "message.inbound", "provider": "infobip", "account": "acme",
        "channel": "sms", "direction": "inbound", "from": CONTACT, "to": "+15550000000",
        "message_id": str(event_id), "text": text, "occurred_at": occurred_at,
        "received_at": received_at, "raw_id": str(uuid.uuid4())})
    return Record("t", 0, 0, b"k", event.to_json())


@pytest.mark.parametrize(("first", "then", "opted_out"), [
    # Ingest answered the START 503 (Kafka acknowledged late) but had stored it; the provider
    # retried it after the contact's STOP: the contact was opted back in, and messaged.
    ("START", "STOP", True),
    # The other way: a contact opted back in was opted out again, without a word.
    ("STOP", "START", False),
])
async def test_a_change_retried_by_the_provider_after_a_newer_one_is_not_applied(
        tmp_path: Any, first: str, then: str, opted_out: bool) -> None:
    bot = handler(tmp_path, keywords_answer)
    await bot.handle(message("STOP" if first == "START" else "START", uuid.uuid4(),
                             SENT - timedelta(hours=1), SENT - timedelta(hours=1)),
                     FakeContext())  # the state before: the first change flips it
    first_id = uuid.uuid4()
    await bot.handle(message(first, first_id, SENT, SENT + timedelta(seconds=1)),
                     FakeContext())
    await bot.handle(message(then, uuid.uuid4(), SENT + timedelta(minutes=2),
                             SENT + timedelta(minutes=2, seconds=1)), FakeContext())
    assert bot.opt_outs.is_opted_out("acme", CONTACT) is opted_out
    retried = FakeContext()
    await bot.handle(message(first, first_id, SENT, SENT + timedelta(minutes=5)), retried)
    assert bot.opt_outs.is_opted_out("acme", CONTACT) is opted_out
    assert (opt_out_changes(retried), commands(retried)) == ([], [])


async def test_a_provider_clock_ahead_stamps_a_change_no_later_than_its_receipt(
        tmp_path: Any) -> None:
    """A message time hours ahead (a local time written without its offset): the STOP stamped
    so would hold back the contact's START until then."""
    bot = handler(tmp_path, keywords_answer)
    await bot.handle(message("STOP", uuid.uuid4(), SENT + timedelta(hours=5), SENT),
                     FakeContext())
    start = FakeContext()
    await bot.handle(message("START", uuid.uuid4(), None, SENT + timedelta(minutes=1)), start)
    assert not bot.opt_outs.is_opted_out("acme", CONTACT)
    assert [c["text"] for c in commands(start)] == [
        "You are subscribed again. Reply STOP to opt out."]


async def test_a_start_in_the_second_of_the_stop_at_a_provider_of_whole_seconds_stands(
        tmp_path: Any) -> None:
    """Both stamped with the provider's second: the START, handled after, is stamped just
    after the STOP (at a tie the opt-out wins wherever the list is read)."""
    bot = handler(tmp_path, keywords_answer)
    await bot.handle(message("STOP", uuid.uuid4(), SENT, SENT + timedelta(seconds=0.3)),
                     FakeContext())
    start = FakeContext()
    await bot.handle(message("START", uuid.uuid4(), SENT, SENT + timedelta(seconds=0.8)),
                     start)
    assert opt_out_changes(start) == [False]
    assert not bot.opt_outs.is_opted_out("acme", CONTACT)
    state = bot.opt_outs.state("acme", CONTACT)
    assert state is not None and state.at == SENT + timedelta(microseconds=1)
