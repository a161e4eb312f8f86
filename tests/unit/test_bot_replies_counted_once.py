"""switchboard_bot_replies_total counts a reply once Kafka has stored it, and once in a bot
process: a message handled again by the same process (its commit refused, its partition back
after a rebalance) makes the same replies, with the same ids, which the sender sends once, and
they were counted again each time."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY

from consumers.bots import handler as handler_module
from consumers.bots.handler import AutoReply, custom_answer, keywords_answer
from consumers.bots.sdk import BotOutput
from switchboard.events import MessageEvent
from switchboard.producer import PublishError
from tests.unit.fakes import FakeContext, KafkaAway
from tests.unit.test_bot_handler import commands, handler, record


def replies_counted(purpose: str) -> float:
    return REGISTRY.get_sample_value("switchboard_bot_replies_total", {
        "worker": "test", "account": "acme", "purpose": purpose}) or 0.0


@pytest.mark.parametrize(("text", "purpose"), [("HELP", "help"), ("hello", "auto-reply")])
async def test_a_message_redelivered_to_the_same_bot_counts_its_reply_once(
        tmp_path: Any, text: str, purpose: str) -> None:
    bot = handler(tmp_path, AutoReply())
    before = replies_counted(purpose)
    message, ctx = record(text), FakeContext()
    for _ in range(3):  # handled, then redelivered twice (uncommitted)
        await bot.handle(message, ctx)
    ids = {c["id"] for c in commands(ctx)}
    assert len(commands(ctx)) == 3 and len(ids) == 1  # made again, one id: sent once
    assert replies_counted(purpose) - before == 1

    await bot.handle(record(text, sender="+4179000222"), FakeContext())  # another contact's
    assert replies_counted(purpose) - before == 2


async def test_replies_are_counted_once_kafka_stored_them(tmp_path: Any) -> None:
    bot = handler(tmp_path, keywords_answer)
    before = replies_counted("help")
    message, ctx = record("HELP"), KafkaAway()
    with pytest.raises(PublishError):
        await bot.handle(message, ctx)
    assert replies_counted("help") == before
    ctx.back = True  # the runtime's retry
    await bot.handle(message, ctx)
    assert replies_counted("help") - before == 1


async def test_each_new_reply_of_a_message_handled_again_is_counted(tmp_path: Any) -> None:
    """A custom bot that answers a message handled again with more replies: the new ones
    have new ids, and are sent, so they count."""
    answers: list[BotOutput] = [["one"], ["one", "two"]]

    async def bot_function(event: MessageEvent) -> BotOutput:
        return answers.pop(0)

    bot = handler(tmp_path, custom_answer(bot_function))
    before = (replies_counted("reply-0"), replies_counted("reply-1"))
    message = record("question")
    for _ in range(2):
        await bot.handle(message, FakeContext())
    assert (replies_counted("reply-0") - before[0], replies_counted("reply-1") - before[1]) \
        == (1, 1)


async def test_the_counted_ids_are_bounded(tmp_path: Any,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handler_module, "COUNTED_IDS_KEPT", 2)
    bot = handler(tmp_path, keywords_answer)
    before = replies_counted("help")
    first = record("HELP")
    for message in (first, record("HELP", sender="+4179000222"),
                    record("HELP", sender="+4179000333")):
        await bot.handle(message, FakeContext())
    assert len(bot._counted) == 2
    await bot.handle(first, FakeContext())  # forgotten: counted again, as another process would
    assert replies_counted("help") - before == 4
