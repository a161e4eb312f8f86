"""The keyword bot and the sender, with ingest and a provider simulator, while their broker
answers nothing for 30 s (paused: connections open, nothing answered, as in a network
partition or a JVM's long pause), contacts texting as it pauses: once Kafka answers, each
contact gets its reply, once; each worker says the silence once and its end once."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest

from consumers import kafka_watch
from tests.integration.bots import ACCOUNT, RULES, new_contact, replies_to, texts
from tests.integration.processes import own_broker, paused
from tests.integration.stack import running_stack

CONTACTS = 20
PAUSED_S = 30.0


async def test_every_contact_is_answered_once_across_a_paused_broker(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(kafka_watch, "KAFKA_SILENT_AFTER_S", 5.0)
    caplog.set_level("INFO")
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(RULES)
    contacts = [new_contact() for _ in range(CONTACTS)]
    async with own_broker(tmp_path) as broker, running_stack(
            broker.bootstrap_servers, workers=("sender", "keywords"),
            rules_file=rules_file) as stack:
        assert broker.process is not None
        for contact in contacts:
            await texts(stack, contact, "price")
        for _ in range(300):  # bounded: 30 s; the first replies sent, the rest under way
            if replies_to(await stack.sends(ACCOUNT), contacts[0]):
                break
            await asyncio.sleep(0.1)
        with paused(broker):
            await asyncio.sleep(PAUSED_S)
            unready = {name: runtime.problem() for name, runtime in stack.workers.items()}
        resumed = time.monotonic()
        replies: dict[str, list[str]] = {}
        for _ in range(90):  # bounded: 45 s
            sends = await stack.sends(ACCOUNT)
            replies = {contact: replies_to(sends, contact) for contact in contacts}
            if all(replies.values()):
                break
            await asyncio.sleep(0.5)
        took_s = time.monotonic() - resumed
        await asyncio.sleep(3)  # a duplicate would show up now
        sends = await stack.sends(ACCOUNT)
        replies = {contact: replies_to(sends, contact) for contact in contacts}
    said = Counter((r.msg.get("event"), r.msg.get("worker")) for r in caplog.records
                   if isinstance(r.msg, dict))
    for worker in ("sender", "keywords"):
        assert (unready[worker] or "").startswith("Kafka unreachable: "), unready
        assert said["kafka is not answering the worker", worker] == 1, said
        assert said["kafka answers the worker again", worker] == 1, said
    assert all(len(r) <= 1 for r in replies.values()), replies  # none twice
    # Each contact answered: a reply whose pending mark timed out as the broker paused, and
    # was stored once it answered, is sent (it was reported outcome_unknown, 'its sender was
    # killed mid-call', 1-2 of 20 in each run, before the sender knew its own marks).
    assert all(replies.values()), replies
    assert took_s < 60, f"the replies came {took_s:.0f} s after the broker answered"
