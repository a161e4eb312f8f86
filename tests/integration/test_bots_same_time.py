"""A contact's STOP, START, STOP (or STOP, START, STOP, START) in one Infobip webhook (it posts
up to 100 reports at once), all of the same `receivedAt`: through ingest, the real broker, the
keyword bot and the sender, the last word stands. Own module: its own stack, sender and
keywords."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import orjson
import pytest

from ingest.signing import sign
from simulator.infobip import infobip_time
from tests.integration.bots import ACCOUNT, RULES, command_result, new_contact, replies_to
from tests.integration.stack import Stack, running_stack


@pytest.fixture(scope="module")
async def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
                ) -> AsyncIterator[Stack]:
    rules_file = tmp_path_factory.mktemp("rules") / "rules.toml"
    rules_file.write_text(RULES)
    async with running_stack(kafka_bootstrap, workers=("sender", "keywords"),
                             rules_file=Path(rules_file)) as running:
        yield running


def one_webhook(contact: str, *texts: str) -> bytes:
    """Infobip's inbound reports of `texts`, in one request, all received in one moment."""
    at = infobip_time(datetime.now(UTC))
    return orjson.dumps({"results": [{
        "event": "MO", "channel": "SMS", "sender": contact.lstrip("+"),
        "destination": "InfoSMS", "content": [{"type": "TEXT", "text": text}],
        "receivedAt": at, "messageId": str(uuid.uuid4()), "messageCount": 1}
        for text in texts]})


async def post_one_webhook(stack: Stack, contact: str, *texts: str) -> None:
    body = one_webhook(contact, *texts)
    headers = sign("basic", "e2e-ib-webhook", url="", body=b"", username="ib") | {
        "content-type": "application/json"}
    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.post(
            f"{stack.settings.public_url}/webhooks/infobip/{ACCOUNT}", content=body,
            headers=headers)
    assert response.status_code == 200, response.text


async def test_stop_start_stop_in_one_webhook_leaves_the_contact_out(stack: Stack) -> None:
    """The START was stamped a microsecond after the first STOP; the last STOP, stamped with
    their common time, was taken as older than it: not applied, not confirmed, and the
    sender went on messaging a contact whose last word was STOP."""
    contact = new_contact()
    await post_one_webhook(stack, contact, "STOP", "START", "STOP")
    unsubscribed = "E2E: you are unsubscribed."
    replies: list[str] = []
    for _ in range(150):  # bounded: 30 s
        replies = replies_to(await stack.sends(ACCOUNT), contact)
        if replies.count(unsubscribed) >= 2:
            break
        await asyncio.sleep(0.2)
    # "Welcome back" is a message like any: the sender refuses it when it has read the last
    # STOP by the time it comes to send it.
    assert replies in ([unsubscribed, "E2E: welcome back.", unsubscribed],
                       [unsubscribed, unsubscribed]), replies
    refused = await command_result(stack, contact)
    assert refused["status"] == "failed" and refused["error"]["code"] == "opted_out"


async def test_stop_start_stop_start_in_one_webhook_leaves_the_contact_in(stack: Stack) -> None:
    """The last START could not be told from the first one handled again, and was not
    applied: the contact who wrote START last got no "welcome back", and the sender refused
    them the newsletter. Their messages' offsets now order them."""
    contact = new_contact()
    await post_one_webhook(stack, contact, "STOP", "START", "STOP", "START")
    unsubscribed, welcome = "E2E: you are unsubscribed.", "E2E: welcome back."
    replies: list[str] = []
    for _ in range(150):  # bounded: 30 s
        replies = replies_to(await stack.sends(ACCOUNT), contact)
        if replies.count(unsubscribed) >= 2 and replies[-1] == welcome:
            break
        await asyncio.sleep(0.2)
    # The first "welcome back" is refused if the sender has read the second STOP by then.
    assert replies in ([unsubscribed, welcome, unsubscribed, welcome],
                       [unsubscribed, unsubscribed, welcome]), replies
    accepted = await command_result(stack, contact)
    assert accepted["status"] == "accepted", accepted
