"""Two keyword bots whose confirmations opt each other out and back in by turns: every message
a change of state, each was confirmed, and they traded SMS without end."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from consumers.bots.handler import BotHandler, keywords_answer
from consumers.handling import Record
from switchboard.events import MessageEvent
from tests.unit.fakes import FakeContext
from tests.unit.test_bot_handler import (
    commands,
    compliance_limited,
    handler,
    kinds,
    opt_out_changes,
)

ACME, OTHER = "+15550000000", "+15550000001"
# Acme's texts begin with the word that undoes the change they confirm ("Start again any
# time...", "Stop any time...": plausible wording); the other company's echo the keyword.
ACME_RULES = """
[accounts.acme]
own_numbers = ["+15550000000"]
stop_confirmation = "START again any time by replying START. You are unsubscribed."
start_confirmation = "STOP any time by replying STOP. Welcome back to Acme alerts."
"""
OTHER_RULES = """
[accounts.other]
own_numbers = ["+15550000001"]
stop_confirmation = "STOP received: you are unsubscribed from Other Co."
start_confirmation = "START received: welcome back to Other Co."
"""
BOUND = 200  # messages the two may trade in this test, at most


def text_to(account: str, sender: str, to: str, text: str) -> Record:
    event = MessageEvent.model_validate({
        "id": uuid.uuid4(), "type": "message.inbound", "provider": "infobip",
        "account": account, "channel": "sms", "direction": "inbound", "from": sender,
        "to": to, "message_id": str(uuid.uuid4()), "text": text,
        "received_at": datetime.now(UTC), "raw_id": "r"})
    return Record("t", 0, 0, b"k", event.to_json())


def bots(tmp_path: Path) -> tuple[BotHandler, BotHandler]:
    (tmp_path / "acme").mkdir()
    (tmp_path / "other").mkdir()
    return (handler(tmp_path / "acme", keywords_answer, ACME_RULES),
            handler(tmp_path / "other", keywords_answer, OTHER_RULES))


async def test_two_bots_confirming_each_others_changes_stop_trading_them(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Other's STOP is answered "START again...", which opts Acme back in at Other, whose
    "START received" opts Other back in at Acme, whose "STOP any time..." opts Acme out
    again: a loop of four changes, each confirmed. An opt-in is confirmed up to
    compliance_reply_limit (5) in the window: the loop ends after five rounds."""
    acme, other = bots(tmp_path)
    before = compliance_limited()
    to_acme, text, traded = True, "STOP", 0  # someone at Other Co. texted Acme STOP
    while traded < BOUND:
        ctx = FakeContext()
        if to_acme:
            await acme.handle(text_to("acme", OTHER, ACME, text), ctx)
        else:
            await other.handle(text_to("other", ACME, OTHER, text), ctx)
        replies = [command["text"] for command in commands(ctx)]
        if not replies:
            break
        to_acme, text, traded = not to_acme, replies[0], traded + 1
    assert traded <= 4 * 5 + 2
    assert compliance_limited() - before == 1  # the acme account's: the one held back
    assert "opt-in confirmation limit reached" in caplog.text
    assert OTHER not in caplog.text and ACME not in caplog.text


async def test_a_contact_opting_out_and_in_by_turns_gets_every_opt_out_confirmed(
        tmp_path: Any) -> None:
    """A person does not opt in six times in ten minutes; past the limit their opt-ins are
    still applied, not confirmed, and each opt-out is still confirmed (the law wants it)."""
    bot = handler(tmp_path, keywords_answer, ACME_RULES)
    steps = []
    for _ in range(7):
        for text in ("STOP", "START"):
            ctx = FakeContext()
            await bot.handle(text_to("acme", "+4179000111", ACME, text), ctx)
            steps.append((kinds(ctx), opt_out_changes(ctx)))
    stops, starts = steps[::2], steps[1::2]
    assert stops == [(["opt-out-confirmation"], [True])] * 7
    assert starts == [(["message"], [False])] * 5 + [([], [False])] * 2
    assert not bot.opt_outs.is_opted_out("acme", "+4179000111")


async def test_help_before_a_start_does_not_hold_back_its_confirmation(tmp_path: Any) -> None:
    """The opt-ins' limit is their own: five HELPs, the other compliance replies' limit
    reached, and the contact's START still gets "Welcome back"."""
    bot = handler(tmp_path, keywords_answer, ACME_RULES)
    contact = "+4179000111"
    for text in ("STOP", *["HELP"] * 6):
        await bot.handle(text_to("acme", contact, ACME, text), FakeContext())
    ctx = FakeContext()
    start = text_to("acme", contact, ACME, "START")
    await bot.handle(start, ctx)
    assert (kinds(ctx), opt_out_changes(ctx)) == (["message"], [False])
    again = FakeContext()  # redelivered: made again, with the same id (sent once)
    await bot.handle(start, again)
    assert [c["id"] for c in commands(again)] == [c["id"] for c in commands(ctx)]
