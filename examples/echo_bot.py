r"""An example custom bot: run it, from the checkout's root and with `switchboard run` going, with

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 SWITCHBOARD_ACCOUNTS_FILE=examples/accounts.toml \
        SWITCHBOARD_RULES_FILE=examples/rules.toml \
        .venv/bin/switchboard worker bot --bot examples.echo_bot:bot

It receives every inbound message (after STOP/START/HELP, which Switchboard answers itself)
and returns what to reply: None, a string, a Reply (text, media, buttons) or a list of them.
"""

from __future__ import annotations

from consumers.bots.sdk import Reply
from consumers.bots.templates import bounded
from switchboard.commands import Button
from switchboard.events import MessageEvent


async def bot(event: MessageEvent) -> Reply | str | None:
    if event.postback == "MORE":
        return "Here is more: we are open 9-17, Monday to Friday."
    if event.text and "hours" in event.text.lower():
        return Reply(text="We are open 9-17. Want more?",
                     buttons=[Button(title="More", payload="MORE")])
    if event.text:
        # Cut to one SMS's worth, as a template's {text}: a long message echoed whole is sent,
        # and paid for, as many parts.
        return f"You said: {bounded(event.text)}"
    return None  # e.g. a picture without text: stay quiet
