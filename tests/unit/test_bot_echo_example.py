"""The example bot users start from (examples/echo_bot.py) echoes as templates do: one SMS's
worth of what the contact wrote."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from consumers.bots.templates import ECHO_CHARS
from examples.echo_bot import bot
from switchboard.events import MessageEvent


def said(text: str) -> MessageEvent:
    return MessageEvent.model_validate({
        "id": uuid.uuid4(), "type": "message.inbound", "provider": "infobip", "account": "acme",
        "channel": "sms", "direction": "inbound", "from": "+4179000111", "to": "+15550000000",
        "text": text, "received_at": datetime.now(UTC), "raw_id": "r"})


async def test_a_long_message_is_echoed_cut_to_one_sms() -> None:
    """The whole text came back: a message of 2,000 characters as 14 SMS parts paid for, and
    two such bots answering each other grew the text by "You said: " each turn."""
    assert await bot(said("x" * 2000)) == "You said: " + "x" * (ECHO_CHARS - 3) + "..."
    assert await bot(said("Hello there")) == "You said: Hello there"
