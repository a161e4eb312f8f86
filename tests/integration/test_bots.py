"""Bots end to end: inbound webhook -> keyword bot -> sender -> simulator, with opt-outs."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from switchboard.addresses import address
from switchboard.commands import OutboundCommand
from switchboard.records import command_record
from switchboard.topics import OUTBOUND_RESULTS
from tests.integration.stack import Stack, results_for, running_stack
from tests.kafka_helpers import TopicWatcher, collect_until, publish

ACCOUNT = "e2e-infobip"
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


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rules") / "rules.toml"
    path.write_text(RULES)
    return path


@pytest.fixture(scope="module")
async def stack(kafka_bootstrap: str, rules_file: Path) -> AsyncIterator[Stack]:
    async with running_stack(kafka_bootstrap, workers=("sender", "keywords"),
                             rules_file=rules_file) as running:
        yield running


def new_contact() -> str:
    return "+4179" + str(uuid.uuid4().int)[:7]


async def texts(stack: Stack, contact: str, text: str) -> None:
    response = await stack.control("POST", "inbound",
                                   {"account": ACCOUNT, "from": contact, "text": text})
    assert response.status_code == 202, response.text


def to(send: dict[str, Any]) -> str | None:
    """The recipient in E.164: the provider got it as Infobip writes numbers (no `+`)."""
    return address(send["to"], "sms")


def replies_to(sends: list[dict[str, Any]], contact: str) -> list[str]:
    return [s["body"]["messages"][0]["content"]["body"]["text"] for s in sends
            if to(s) == contact]


async def wait_replies(stack: Stack, contact: str, count: int, timeout_s: float = 30
                       ) -> list[str]:
    for _ in range(int(timeout_s * 5)):
        replies = replies_to(await stack.sends(ACCOUNT), contact)
        if len(replies) >= count:
            await asyncio.sleep(0.5)  # a duplicate would show up now
            return replies_to(await stack.sends(ACCOUNT), contact)
        await asyncio.sleep(0.2)
    raise AssertionError(f"{contact} got {replies_to(await stack.sends(ACCOUNT), contact)}")


async def test_help_keyword_and_fallback_are_answered(stack: Stack) -> None:
    contact = new_contact()
    await texts(stack, contact, "help")
    assert await wait_replies(stack, contact, 1) == [
        "E2E help: reply PRICE or ORDER <n>. STOP to opt out."]
    await texts(stack, contact, "Price please")
    await texts(stack, contact, "order 42")
    await texts(stack, contact, "what?")
    replies = await wait_replies(stack, contact, 4)
    assert replies[1:] == [f"E2E price list for {contact}", "E2E order 42 confirmed",
                           "E2E: unknown 'what?'"], "answered in order, through the same account"


async def command_result(stack: Stack, contact: str) -> dict[str, Any]:
    command = OutboundCommand(id=f"cmd-{uuid.uuid4()}", account=ACCOUNT, to=contact,
                              text="Our newsletter", created_at=datetime.now(UTC))
    async with TopicWatcher(stack.bootstrap, (OUTBOUND_RESULTS.name,)) as watcher:
        before = await watcher.snapshot()
        await publish(stack.bootstrap, [command_record(command, "infobip")])
        found = await collect_until(watcher, before, lambda f: bool(results_for(f, command.id)))
    [result] = results_for(found, command.id)
    return result


async def test_a_burst_of_1000_contacts_is_answered_once_each(stack: Stack) -> None:
    contacts = [f"+4178{n:07d}" for n in range(1000)]
    limit = asyncio.Semaphore(20)

    async def one(client: httpx.AsyncClient, contact: str) -> None:
        async with limit:
            response = await client.post(f"{stack.sim_url}/_sim/inbound", json={
                "account": ACCOUNT, "from": contact, "text": "price"})
            assert response.status_code == 202

    async with httpx.AsyncClient(timeout=30) as client:
        await asyncio.gather(*(one(client, c) for c in contacts))
    wanted = set(contacts)
    answered: list[str | None] = []
    for _ in range(600):  # bounded: up to 120 s
        answered = [to(s) for s in await stack.sends(ACCOUNT) if to(s) in wanted]
        if len(answered) >= len(contacts):
            break
        await asyncio.sleep(0.2)
    await asyncio.sleep(1)
    answered = [to(s) for s in await stack.sends(ACCOUNT) if to(s) in wanted]
    assert len(set(answered)) == 1000, f"{1000 - len(set(answered))} contacts got no answer"
    assert len(answered) == 1000, "some contact was answered twice"
