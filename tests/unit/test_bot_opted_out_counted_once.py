"""switchboard_bot_opted_out_messages_total counts a message from an opted-out contact once in a
bot process: handled again by the same process (its commit refused, its partition back after
a rebalance), it was left unanswered, and counted, each time."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY

from consumers.bots.handler import keywords_answer
from tests.unit.fakes import FakeContext
from tests.unit.test_bot_handler import commands, handler, record


def opted_out_counted() -> float:
    return REGISTRY.get_sample_value("switchboard_bot_opted_out_messages_total", {
        "worker": "test", "account": "acme"}) or 0.0


async def test_a_message_redelivered_to_the_same_bot_is_counted_once(tmp_path: Any) -> None:
    bot = handler(tmp_path, keywords_answer)
    await bot.handle(record("STOP"), FakeContext())
    before = opted_out_counted()
    message, ctx = record("anything"), FakeContext()
    for _ in range(3):  # handled, then redelivered twice (uncommitted)
        await bot.handle(message, ctx)
    assert commands(ctx) == []  # left unanswered each time
    assert opted_out_counted() - before == 1

    await bot.handle(record("anything else"), FakeContext())  # the contact's next message
    assert opted_out_counted() - before == 2

