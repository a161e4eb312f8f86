"""Opt-out survives restarting the workers; START re-enables. Own module: no other workers."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.integration.stack import running_stack
from tests.integration.test_bots import (
    ACCOUNT,
    RULES,
    command_result,
    new_contact,
    replies_to,
    texts,
    wait_replies,
)


async def test_stop_opts_out_until_start_and_survives_a_restart(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(RULES)
    contact = new_contact()
    async with running_stack(kafka_bootstrap, workers=("sender", "keywords"),
                             rules_file=rules_file) as stack:
        await texts(stack, contact, "STOP")
        assert await wait_replies(stack, contact, 1) == ["E2E: you are unsubscribed."]
        refused = await command_result(stack, contact)
        assert refused["status"] == "failed" and refused["error"]["code"] == "opted_out"
        await texts(stack, contact, "price")  # an opted-out contact gets no bot reply either
        await asyncio.sleep(2)
        assert replies_to(await stack.sends(ACCOUNT), contact) == ["E2E: you are unsubscribed."]

    # New workers (a restart) load the opt-out list from Kafka.
    async with running_stack(kafka_bootstrap, workers=("sender", "keywords"),
                             rules_file=rules_file) as restarted:
        still = await command_result(restarted, contact)
        assert still["status"] == "failed" and still["error"]["code"] == "opted_out"
        await texts(restarted, contact, "START")
        assert await wait_replies(restarted, contact, 1) == ["E2E: welcome back."]
        allowed = await command_result(restarted, contact)
        assert allowed["status"] == "accepted"
