"""Opt-out survives restarting the workers; START re-enables. Own module: no other workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from switchboard.topics import MESSAGE_INBOUND
from tests.integration.bots import (
    RULES,
    command_result,
    new_contact,
    texts,
    wait_replies,
)
from tests.integration.stack import isolated_prefix, running_stack
from tests.kafka_helpers import collect_until


def _inbound_texts(found: dict[str, list[Any]], contact: str) -> list[str]:
    """The texts of `contact`'s inbound events, in their partition's order."""
    events = [orjson.loads(record.value) for record in found.get(MESSAGE_INBOUND.name, [])]
    return [event["text"] for event in events if event.get("from") == contact]


async def test_stop_opts_out_until_start_and_survives_a_restart(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(RULES)
    contact = new_contact()
    # Shared on purpose by the two stacks: the restarted one is the same install (its topics,
    # groups and opt-out list); both are this test's alone.
    prefix = isolated_prefix()
    async with running_stack(kafka_bootstrap, workers=("sender", "keywords"),
                             rules_file=rules_file, kafka_name_prefix=prefix) as stack:
        await texts(stack, contact, "STOP")
        assert await wait_replies(stack, contact, 1) == ["E2E: you are unsubscribed."]
        refused = await command_result(stack, contact)
        assert refused["status"] == "failed" and refused["error"]["code"] == "opted_out"
        # An opted-out contact gets no bot reply either, but still an answer to HELP. Both
        # are in the contact's partition, "price" first: once HELP is answered, "price" has
        # been handled, so a reply to it would already have been sent.
        async with stack.watching((MESSAGE_INBOUND.name,)) as watcher:
            before = await watcher.snapshot()
            await texts(stack, contact, "price")
            await collect_until(watcher, before, lambda found: _inbound_texts(
                found, contact) == ["price"])  # stored before HELP is sent
            await texts(stack, contact, "HELP")
            stored = await collect_until(watcher, before, lambda found: len(_inbound_texts(
                found, contact)) >= 2)
        assert _inbound_texts(stored, contact) == ["price", "HELP"]
        assert await wait_replies(stack, contact, 2) == [
            "E2E: you are unsubscribed.", "E2E help: reply PRICE or ORDER <n>. STOP to opt out."]

    # New workers (a restart) load the opt-out list from Kafka.
    async with running_stack(kafka_bootstrap, workers=("sender", "keywords"),
                             rules_file=rules_file, kafka_name_prefix=prefix) as restarted:
        still = await command_result(restarted, contact)
        assert still["status"] == "failed" and still["error"]["code"] == "opted_out"
        await texts(restarted, contact, "START")
        assert await wait_replies(restarted, contact, 1) == ["E2E: welcome back."]
        allowed = await command_result(restarted, contact)
        assert allowed["status"] == "accepted"
