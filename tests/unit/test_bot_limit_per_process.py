"""The reply limits are each bot process's own (README, *Bots*): two bot workers side by side
each let a contact have reply_limit automated replies; compliance answers are not doubled."""

from __future__ import annotations

from pathlib import Path

from consumers.bots.handler import (
    Answer,
    BotHandler,
    RulesSource,
    custom_answer,
    keywords_answer,
)
from consumers.bots.optouts import OptOutList, decode_opt_out
from consumers.table import CompactedTable
from switchboard.events import MessageEvent
from switchboard.topics import OPT_OUTS
from tests.unit.fakes import FakeContext
from tests.unit.test_bot_handler import commands, record

RULES = '[accounts.acme]\nfallback = "Sorry, reply HELP."\nreply_limit = 4\n'


async def echo(event: MessageEvent) -> str:
    return f"You said: {event.text}"


def worker(name: str, path: Path, answer: Answer) -> BotHandler:
    table = CompactedTable("unused:9092", OPT_OUTS.name, decode_opt_out)
    return BotHandler(name, RulesSource(path), OptOutList(table), answer)


async def test_two_bot_workers_each_give_a_contact_reply_limit_replies(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(RULES)
    workers = [worker("keywords", path, keywords_answer),
               worker("bot-echo", path, custom_answer(echo))]
    ctx = FakeContext()
    for n in range(10):
        message = record(f"hello {n}")  # each worker's group reads every message
        for bot in workers:
            await bot.handle(message, ctx)
    replies = [c for c in commands(ctx) if c["kind"] == "message"]
    assert len(replies) == 2 * 4 and len({c["id"] for c in replies}) == 8

    help_ = FakeContext()
    message = record("HELP")
    for bot in workers:
        await bot.handle(message, help_)
    assert len({c["id"] for c in commands(help_)}) == 1  # one id: the sender sends it once
