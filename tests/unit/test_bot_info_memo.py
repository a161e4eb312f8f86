"""INFO's memo (the first rule answering the message, asked by compliance and then by
keyword_reply) is the account's, for the message being handled: not a module's, holding the
last message (a megabyte, perhaps) and, past a reload, the old rules."""

from __future__ import annotations

import gc
import uuid
import weakref
from datetime import UTC, datetime
from typing import Any

from consumers.bots.compiled import CompiledAccount
from consumers.bots.decide import compliance, keyword_reply
from consumers.bots.handler import keywords_answer
from consumers.bots.rules import parse_rules
from consumers.handling import Record
from switchboard.events import MessageEvent
from tests.unit.fakes import FakeContext
from tests.unit.test_bot_handler import commands, handler

INFO_RULE = '[[accounts.acme.rules]]\nkeyword = "info"\nreply = "Open 9-17"\n'


def event(text: str, account: str = "acme") -> MessageEvent:
    return MessageEvent.model_validate({
        "id": uuid.uuid4(), "type": "message.inbound", "provider": "infobip",
        "account": account, "channel": "sms", "direction": "inbound", "from": "+4179000111",
        "to": "+15550000000", "text": text, "received_at": datetime.now(UTC), "raw_id": "r"})


async def test_a_handled_info_keeps_neither_the_message_nor_the_rules_a_reload_replaced(
        tmp_path: Any) -> None:
    bot = handler(tmp_path, keywords_answer, INFO_RULE)
    old_rules: weakref.ref[CompiledAccount] = weakref.ref(bot.rules.rules_for("acme"))
    info = event("INFO " + "x" * 100_000)
    ctx = FakeContext()
    await bot.handle(Record("t", 0, 0, b"k", info.to_json()), ctx)
    assert [c["text"] for c in commands(ctx)] == ["Open 9-17"]
    (tmp_path / "rules.toml").write_text(INFO_RULE.replace("9-17", "9-18"))
    bot.rules.request_reload()
    assert bot.rules.rules_for("acme") is not old_rules()
    gc.collect()
    assert old_rules() is None
    assert [o for o in gc.get_objects()  # the handler's copy of the message
            if isinstance(o, MessageEvent) and o.id == info.id and o is not info] == []


def test_each_account_answers_an_info_from_its_own_rules() -> None:
    """Two accounts' rules asked of one message (the "*" defaults answer several accounts):
    each answers from its own, whichever was asked first."""
    rules = parse_rules({"accounts": {
        "acme": {"rules": [{"keyword": "info", "reply": "Acme: open 9-17"}]},
        "globex": {"rules": [{"regex": "^info", "reply": "Globex: open 8-20"}]}}})
    acme, globex = rules.accounts["acme"], rules.accounts["globex"]
    info = event("INFO")
    assert compliance(info, acme) is None and compliance(info, globex) is None
    answers = keyword_reply(info, acme), keyword_reply(info, globex)
    assert [a.reply if a else None for a in answers] == ["Acme: open 9-17", "Globex: open 8-20"]
