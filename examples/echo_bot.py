"""An example custom bot: run it with

    switchboard worker bot --bot examples.echo_bot:bot

It receives every inbound message (after STOP/START/HELP, which Switchboard answers itself)
and returns what to reply: None, a string, a Reply (text, media, buttons) or a list of them.
"""

from __future__ import annotations

from consumers.bots.sdk import Reply
from switchboard.commands import Button
from switchboard.events import MessageEvent


async def bot(event: MessageEvent) -> Reply | str | None:
    if event.postback == "MORE":
        return "Here is more: we are open 9-17, Monday to Friday."
    if event.text and "hours" in event.text.lower():
        return Reply(text="We are open 9-17. Want more?",
                     buttons=[Button(title="More", payload="MORE")])
    if event.text:
        return f"You said: {event.text}"
    return None  # e.g. a picture without text: stay quiet
