"""compliance_reply_limit where it could withhold what it must not: a confirmation whose change
another path stored meanwhile, accounts apart (the "*" defaults too), a reload changing it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from consumers.bots.handler import keywords_answer
from consumers.handling import MustNotSkip, Record
from switchboard.events import MessageEvent
from tests.unit.fakes import FakeContext
from tests.unit.test_bot_handler import (
    FailingOnceContext,
    bird_opt_out_report,
    commands,
    handler,
    kinds,
    opt_out_changes,
    record,
)


def text_to(account: str, text: str, sender: str = "+4179000111") -> Record:
    event = MessageEvent.model_validate({
        "id": uuid.uuid4(), "type": "message.inbound", "provider": "infobip",
        "account": account, "channel": "sms", "direction": "inbound", "from": sender,
        "to": "+15550000000", "message_id": str(uuid.uuid4()), "text": text,
        "received_at": datetime.now(UTC), "raw_id": "r"})
    return Record("t", 0, 0, b"k", event.to_json())


async def test_a_confirmation_whose_change_a_provider_report_stored_meanwhile_is_made(
        tmp_path: Any) -> None:
    """The STOP's publish failed once its reply was admitted as a change; before the retry a
    provider's opt-out report (newer) stored the contact's opt-out: the retry's STOP changes
    nothing any more, and the contact is at the limit, but its confirmation is still made."""
    bot = handler(tmp_path, keywords_answer, "[accounts.acme]\ncompliance_reply_limit = 1\n")
    await bot.handle(record("HELP"), FakeContext())  # the contact at the limit
    stop, ctx = record("STOP"), FailingOnceContext()
    with pytest.raises(MustNotSkip):
        await bot.handle(stop, ctx)
    await bot.handle(bird_opt_out_report(datetime.now(UTC)), FakeContext())
    assert bot.opt_outs.is_opted_out("acme", "+4179000111")
    await bot.handle(stop, ctx)
    assert (kinds(ctx), opt_out_changes(ctx)) == (["opt-out-confirmation"], [])


async def test_a_stop_after_a_provider_opt_out_changes_nothing_and_is_counted(
        tmp_path: Any) -> None:
    bot = handler(tmp_path, keywords_answer, "[accounts.acme]\ncompliance_reply_limit = 1\n")
    await bot.handle(bird_opt_out_report(datetime.now(UTC)), FakeContext())
    first, second = FakeContext(), FakeContext()
    await bot.handle(record("STOP"), first)
    await bot.handle(record("STOP"), second)
    assert kinds(first) == ["opt-out-confirmation"] and kinds(second) == []


async def test_each_account_has_its_own_count_and_limit_the_default_one_too(
        tmp_path: Any) -> None:
    """acme's limit is its own; an account without a section has the default (5), counted
    apart from acme's for the same contact."""
    bot = handler(tmp_path, keywords_answer, "[accounts.acme]\ncompliance_reply_limit = 1\n")
    ctx = FakeContext()
    for _ in range(7):
        await bot.handle(text_to("acme", "HELP"), ctx)
        await bot.handle(text_to("globex", "HELP"), ctx)
    answered = [command["account"] for command in commands(ctx)]
    assert answered.count("acme") == 1 and answered.count("globex") == 5


async def test_a_reload_changes_the_limit_for_the_counts_already_made(tmp_path: Any) -> None:
    bot = handler(tmp_path, keywords_answer, "[accounts.acme]\ncompliance_reply_limit = 1\n")
    ctx = FakeContext()
    for _ in range(2):
        await bot.handle(record("HELP"), ctx)
    (tmp_path / "rules.toml").write_text("[accounts.acme]\ncompliance_reply_limit = 3\n")
    bot.rules.request_reload()  # as SIGHUP does
    for _ in range(3):
        await bot.handle(record("HELP"), ctx)
    assert kinds(ctx) == ["help"] * 3  # 1 before, then up to 3 in the window
