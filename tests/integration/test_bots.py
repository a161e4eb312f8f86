"""Bots end to end: inbound webhook -> keyword bot -> sender -> simulator, with opt-outs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from consumers.bots.optouts import OptOutState, opt_out_key
from switchboard.records import OutRecord
from switchboard.topics import OPT_OUTS
from tests.integration.bots import (
    ACCOUNT,
    RULES,
    command_result,
    new_contact,
    replies_to,
    texts,
    to,
    wait_replies,
)
from tests.integration.stack import Stack, running_stack
from tests.kafka_helpers import publish


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


async def test_an_automated_help_loop_is_answered_up_to_the_compliance_reply_limit(
        stack: Stack) -> None:
    """An automated sender whose every text begins "HELP:" got the help text each time."""
    contact = new_contact()
    for n in range(8):
        await texts(stack, contact, f"HELP: Other Co alerts ({n}). Reply STOP to opt out.")
    await texts(stack, contact, "price")  # answered after the HELPs: all of them handled
    help_text = "E2E help: reply PRICE or ORDER <n>. STOP to opt out."
    assert await wait_replies(stack, contact, 6) == [help_text] * 5 + [
        f"E2E price list for {contact}"]


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


async def test_a_stop_older_than_an_imported_opt_in_is_applied_and_confirmed(
        stack: Stack) -> None:
    """An opt-in written straight to the opt-out topic (an import) with a later `at` than a
    STOP the contact then sends: the STOP was neither applied nor confirmed, and the contact
    went on getting messages. Applied, confirmed, and the sender refuses them again."""
    contact = new_contact()
    await texts(stack, contact, "STOP")
    assert await wait_replies(stack, contact, 1) == ["E2E: you are unsubscribed."]
    opt_in = OptOutState(account=ACCOUNT, contact=contact, opted_out=False, source="import:crm",
                         at=datetime.now(UTC) + timedelta(hours=1))
    await publish(stack.kafka(), [OutRecord(OPT_OUTS.name, opt_in.model_dump_json().encode(),
                                              opt_out_key(ACCOUNT, contact))])
    # Answered once the bot has read the import (unanswered while it holds them out).
    for _ in range(30):  # bounded: about 30 s
        await texts(stack, contact, "price")
        await asyncio.sleep(1)
        if len(replies_to(await stack.sends(ACCOUNT), contact)) > 1:
            break
    assert replies_to(await stack.sends(ACCOUNT), contact)[1] == f"E2E price list for {contact}"
    await texts(stack, contact, "STOP")  # received before the import's `at`
    unsubscribed: list[str] = []
    for _ in range(150):  # bounded: 30 s
        replies = replies_to(await stack.sends(ACCOUNT), contact)
        unsubscribed = [text for text in replies if text == "E2E: you are unsubscribed."]
        if len(unsubscribed) == 2:
            break
        await asyncio.sleep(0.2)
    assert len(unsubscribed) == 2, replies
    refused = await command_result(stack, contact)
    assert refused["status"] == "failed" and refused["error"]["code"] == "opted_out"
