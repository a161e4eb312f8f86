"""What `worker autoreply` answers: a message with something in it (words, media, a button),
not one with nothing in it, as the keyword bot's fallback does not."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from consumers.bots.handler import AutoReply
from consumers.handling import Record
from switchboard.events import MessageEvent
from tests.unit.fakes import FakeContext
from tests.unit.test_bot_handler import commands, handler

RULES = '[accounts.acme]\nauto_reply = { text = "Got it, we answer within a day.", ' \
        'cooldown_s = 3600 }\n'
REPLY = "Got it, we answer within a day."


def inbound(**fields: Any) -> Record:
    event = MessageEvent.model_validate({
        "id": uuid.uuid4(), "type": "message.inbound", "provider": "infobip", "account": "acme",
        "channel": "sms", "direction": "inbound", "from": "+4179000111", "to": "+15550000000",
        "message_id": str(uuid.uuid4()), "received_at": datetime.now(UTC), "raw_id": "r",
        **fields})
    return Record("t", 0, 0, b"k", event.to_json())


@pytest.mark.parametrize("fields", [
    {},  # a contact card, a sign-in response: nothing the event carries
    {"text": ""},  # a provider's empty SMS
    {"text": "  \n\t"},  # only spaces
], ids=["nothing", "empty-text", "blank-text"])
async def test_a_message_with_nothing_in_it_gets_no_auto_reply_and_starts_no_cooldown(
        tmp_path: Path, fields: dict[str, Any]) -> None:
    """It got the auto-reply, a paid SMS answering nothing (and its cooldown then held back
    the answer to the contact's next, real message)."""
    bot = handler(tmp_path, AutoReply(), RULES)
    ctx = FakeContext()
    await bot.handle(inbound(**fields), ctx)
    assert commands(ctx) == []
    await bot.handle(inbound(text="Is the shop open on Sunday?"), ctx)
    assert [c["text"] for c in commands(ctx)] == [REPLY]


@pytest.mark.parametrize("fields", [
    {"media": [{"url": "https://example.com/p.jpg", "content_type": "image/jpeg"}]},
    {"postback": "MENU"},
    {"text": "ok"},
], ids=["photo-without-words", "button", "text"])
async def test_a_message_with_words_media_or_a_button_gets_the_auto_reply(
        tmp_path: Path, fields: dict[str, Any]) -> None:
    bot = handler(tmp_path, AutoReply(), RULES)
    ctx = FakeContext()
    await bot.handle(inbound(**fields), ctx)
    assert [c["text"] for c in commands(ctx)] == [REPLY]
