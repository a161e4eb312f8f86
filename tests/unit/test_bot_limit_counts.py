"""A reply held back by a limit is counted once per message: handled again (its opt-out
change's publish retried while Kafka is away, a redelivery), it is held back again, and the
limited counters (which alerts watch) do not count it again."""

from __future__ import annotations

from typing import Any

import pytest

from consumers.bots.handler import custom_answer, keywords_answer
from consumers.bots.limits import ReplyLimit
from consumers.bots.rules import parse_rules
from consumers.handling import MustNotSkip
from tests.unit.fakes import FakeContext, KafkaAway
from tests.unit.test_bot_handler import (
    FALLBACK,
    commands,
    compliance_limited,
    handler,
    kinds,
    limited,
    opt_out_changes,
    record,
)
from tests.unit.test_bot_rules import inbound


async def test_a_held_back_stop_whose_opt_out_publish_is_retried_is_counted_once(
        tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A STOP from a contact already out, at the limit: its reply is held back, its opt-out
    record still published. While Kafka is away the handler is retried with it."""
    bot = handler(tmp_path, keywords_answer, "[accounts.acme]\ncompliance_reply_limit = 1\n")
    await bot.handle(record("STOP"), FakeContext())  # a change: confirmed, not counted
    await bot.handle(record("HELP"), FakeContext())  # the contact at the limit
    before = compliance_limited()
    stop, ctx = record("STOP"), KafkaAway()
    for _ in range(5):
        with pytest.raises(MustNotSkip):
            await bot.handle(stop, ctx)
    ctx.back = True
    await bot.handle(stop, ctx)
    assert (kinds(ctx), opt_out_changes(ctx)) == ([], [True])
    assert compliance_limited() - before == 1
    assert caplog.text.count("compliance reply limit reached") == 1

    await bot.handle(record("HELP"), FakeContext())  # another message: counted
    assert compliance_limited() - before == 2


async def test_a_held_back_reply_redelivered_is_counted_once(tmp_path: Any) -> None:
    bot = handler(tmp_path, keywords_answer, FALLBACK + "reply_limit = 1\n")
    await bot.handle(record("hello"), FakeContext())
    before = limited()
    held = [record(f"auto-reply {n}") for n in range(3)]
    ctx = FakeContext()
    for _ in range(2):  # the batch since the last commit, handled again after a rebalance
        for message in held:
            await bot.handle(message, ctx)
    assert commands(ctx) == []
    assert limited() - before == 3


def test_held_back_ids_are_kept_within_the_limiters_bound() -> None:
    """They share max_entries with the replies made, a contact's latest held_kept only: an
    automated sender held back without end grows neither the memory nor the lists read per
    message."""
    account = parse_rules({"accounts": {"acme": {"reply_limit": 1}}}).accounts["acme"]
    limit = ReplyLimit("test", max_entries=40)
    for n in range(1000):
        limit.admit(inbound(f"message {n}"), account, 1)
    for n in range(30):
        limit.admit(inbound("hi", sender=f"+41790002{n:02}"), account, 1)
    held = sum(map(len, limit._held.values()))
    made = sum(map(len, limit._made.values()))
    assert held + made == limit._entries <= 40
    assert all(len(ids) <= limit.held_kept for ids in limit._held.values())


async def test_a_custom_bots_answer_of_several_replies_never_takes_a_contact_past_the_limit(
        tmp_path: Any) -> None:
    """Three replies were let in whenever the count was below the limit: at three of four,
    a contact got six. An answer is made whole if it fits what is left, or held back whole."""
    async def bot(event: Any) -> list[str]:
        return ["Hours:", "9-17", "Mon-Fri"] if event.text == "hours" else ["Hi"]

    bot_handler = handler(tmp_path, custom_answer(bot), "[accounts.acme]\nreply_limit = 4\n")
    before = limited()
    ctx = FakeContext()
    for text in ("hours", "hours", "hello", "hello"):
        await bot_handler.handle(record(text), ctx)
    assert [c["text"] for c in commands(ctx)] == ["Hours:", "9-17", "Mon-Fri", "Hi"]
    assert limited() - before == 3 + 1  # the replies held back
