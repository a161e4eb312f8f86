"""The keyword bot end to end on the running stack: rules, contacts texting in, replies."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson

from switchboard.addresses import address
from switchboard.commands import OutboundCommand
from switchboard.records import command_record
from switchboard.topics import MESSAGE_INBOUND, OUTBOUND_RESULTS
from tests.integration.stack import Stack, results_for
from tests.kafka_helpers import collect_until, publish

ACCOUNT = "e2e-infobip"  # the account the bot rules below are for
RULES = """
[accounts.e2e-infobip]
help_text = "E2E help: reply PRICE or ORDER <n>. STOP to opt out."
stop_confirmation = "E2E: you are unsubscribed."
start_confirmation = "E2E: welcome back."
fallback = "E2E: unknown '{text}'"

[[accounts.e2e-infobip.rules]]
keyword = "price"
reply = "E2E price list for {from}"

[[accounts.e2e-infobip.rules]]
prefix = "order"
reply = "E2E order {rest} confirmed"
"""


def new_contact() -> str:
    """A phone number no other test (or run) texts from."""
    return "+4179" + str(uuid.uuid4().int)[:7]


async def texts(stack: Stack, contact: str, text: str) -> None:
    """`contact` texts ACCOUNT through the simulator (as its provider would deliver it)."""
    response = await stack.control("POST", "inbound",
                                   {"account": ACCOUNT, "from": contact, "text": text})
    assert response.status_code == 202, response.text


def inbound_texts(found: dict[str, list[Any]], contact: str) -> list[str]:
    """The texts of `contact`'s inbound events in `found`, in their partition's order."""
    events = [orjson.loads(record.value) for record in found.get(MESSAGE_INBOUND.name, [])]
    return [event["text"] for event in events if event.get("from") == contact]


async def texts_in_order(stack: Stack, contact: str, *messages: str) -> None:
    """`contact` texts each of `messages`, each stored before the next is sent: the simulator
    delivers each webhook on its own, and two sent at once reach ingest in either order. The
    bots are not waited for: they may find them all queued."""
    async with stack.watching((MESSAGE_INBOUND.name,)) as watcher:
        before = await watcher.snapshot()
        for count, text in enumerate(messages, start=1):
            await texts(stack, contact, text)

            def stored(found: dict[str, list[Any]], count: int = count) -> bool:
                return len(inbound_texts(found, contact)) >= count

            await collect_until(watcher, before, stored)


def to(send: dict[str, Any]) -> str | None:
    """The recipient in E.164: the provider got it as Infobip writes numbers (no `+`)."""
    return address(send["to"], "sms")


def replies_to(sends: list[dict[str, Any]], contact: str) -> list[str]:
    """The texts of the simulator's `sends` to `contact`."""
    return [s["body"]["messages"][0]["content"]["body"]["text"] for s in sends
            if to(s) == contact]


async def wait_replies(stack: Stack, contact: str, count: int, timeout_s: float = 30
                       ) -> list[str]:
    """ACCOUNT's replies to `contact`, once there are `count` (and a moment for a duplicate)."""
    for _ in range(int(timeout_s * 5)):
        replies = replies_to(await stack.sends(ACCOUNT), contact)
        if len(replies) >= count:
            await asyncio.sleep(0.5)  # a duplicate would show up now
            return replies_to(await stack.sends(ACCOUNT), contact)
        await asyncio.sleep(0.2)
    raise AssertionError(f"{contact} got {replies_to(await stack.sends(ACCOUNT), contact)}")


async def command_result(stack: Stack, contact: str) -> dict[str, Any]:
    """The sender's result for a newsletter command from ACCOUNT to `contact`."""
    command = OutboundCommand(id=f"cmd-{uuid.uuid4()}", account=ACCOUNT, to=contact,
                              text="Our newsletter", created_at=datetime.now(UTC))
    async with stack.watching((OUTBOUND_RESULTS.name,)) as watcher:
        before = await watcher.snapshot()
        await publish(stack.kafka(), [command_record(command, "infobip")])
        found = await collect_until(watcher, before, lambda f: bool(results_for(f, command.id)))
    [result] = results_for(found, command.id)
    return result
