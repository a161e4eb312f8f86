"""Writing a bot: one async function from an inbound event to zero or more replies.

    # mybot.py
    from consumers.bots.sdk import Reply

    async def bot(event):
        if event.text and "hours" in event.text.lower():
            return "We are open 9-17, Monday to Friday."
        return None          # or a str, a Reply, or a list of them ("" is no reply)

    $ switchboard worker bot --bot mybot:bot

The runtime gives it Kafka ordering per conversation, retries, dead letters and metrics;
compliance (STOP/START/HELP) is handled before the function is called, and replies go out
through the sender, which refuses opted-out contacts. Reply command ids are derived from the
event id, so a redelivered event never produces a second message.
"""

from __future__ import annotations

import importlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from switchboard.commands import Button, CommandKind, OutboundCommand
from switchboard.events import Media, MessageEvent

REPLY_NAMESPACE = uuid.UUID("0b6f8f0e-1d59-5a57-9a3c-3c0f1e2d4b6a")


@dataclass(frozen=True)
class Reply:
    text: str | None = None
    media: list[Media] = field(default_factory=list)
    buttons: list[Button] = field(default_factory=list)


BotOutput = None | str | Reply | Sequence[str | Reply]
BotFunction = Callable[[MessageEvent], Awaitable[BotOutput]]


def as_replies(output: BotOutput) -> list[Reply]:
    """The bot's output as replies; an empty or blank one is none: it would be a command the
    sender refuses (no text), or a blank message paid for."""
    if output is None:
        return []
    if isinstance(output, (str, Reply)):
        output = [output]
    replies = [Reply(text=item) if isinstance(item, str) else item for item in output]
    return [reply for reply in replies
            if (reply.text and reply.text.strip()) or reply.media or reply.buttons]


def reply_command(event: MessageEvent, reply: Reply, purpose: str,
                  kind: CommandKind = CommandKind.MESSAGE,
                  slot: str | None = None) -> OutboundCommand:
    """The command answering `event`; same event and `slot` (default: the purpose) give the
    same command id, so a redelivered event is answered once."""
    assert event.from_ is not None
    return OutboundCommand(
        id=str(uuid.uuid5(REPLY_NAMESPACE, f"{event.id}|{slot or purpose}")),
        account=event.account, to=event.from_, channel=event.channel, text=reply.text,
        media=reply.media, buttons=reply.buttons, in_reply_to=event.message_id, kind=kind,
        created_at=datetime.now(UTC), metadata={"in_reply_to_event": str(event.id),
                                                "purpose": purpose},
    )


def load_bot(spec: str) -> BotFunction:
    """`package.module:function` -> the function (the module must be importable)."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"bot {spec!r}: expected module:function")
    function = getattr(importlib.import_module(module_name), attribute, None)
    if not callable(function):
        raise ValueError(f"bot {spec!r}: {attribute} is not a function in {module_name}")
    bot: BotFunction = function
    return bot
