"""An opt-out change older than the contact's known state is not applied (the newer `at`
wins): its confirmation must not say it was."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from consumers.bots.handler import keywords_answer
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
