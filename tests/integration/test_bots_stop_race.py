"""A contact's STOP followed at once by other messages, with two bots reading each (keywords and
autoreply, two groups): one confirmation, and no other reply but HELP's. Own module: its own
workers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from switchboard.records import COMMAND_TYPE, ce_type_of
from switchboard.topics import OUTBOUND
from tests.integration.bots import RULES, new_contact, texts_in_order, wait_replies
from tests.integration.stack import running_stack
from tests.kafka_helpers import collect_until

HELP = "E2E help: reply PRICE or ORDER <n>. STOP to opt out."
AUTO_REPLY = 'auto_reply = { text = "E2E: thanks, we will answer", cooldown_s = 3600 }\n'


async def test_messages_right_after_a_stop_get_no_reply_from_either_bot(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(RULES.replace('fallback = ', AUTO_REPLY + 'fallback = ', 1))
    contact = new_contact()
    async with running_stack(kafka_bootstrap, workers=("sender", "keywords", "autoreply"),
                             rules_file=rules_file) as stack, \
            stack.watching((OUTBOUND.name,)) as watcher:
        before = await watcher.snapshot()
        # Not waiting for the bots between them.
        await texts_in_order(stack, contact, "STOP", "price", "hello", "order 9", "HELP")
        # Each bot handles the contact's messages in order: once both answered HELP, the last,
        # whatever else they made is on the topic.
        found = await collect_until(watcher, before, lambda found: [
            c["kind"] for c in _commands(found, contact)].count("help") >= 2)
        replies = await wait_replies(stack, contact, 2)
    assert replies == ["E2E: you are unsubscribed.", HELP]
    commands = _commands(found, contact)
    made = sorted((c["kind"], c["metadata"]["purpose"]) for c in commands)
    # Each bot's, with the same ids: the sender sent each once.
    assert made == [("help", "help")] * 2 + [("opt-out-confirmation", "opt-out")] * 2
    assert len({c["id"] for c in commands}) == 2


def _commands(found: dict[str, list[Any]], contact: str) -> list[dict[str, Any]]:
    """The commands to `contact` in `found`."""
    values = [orjson.loads(record.value) for record in found.get(OUTBOUND.name, [])
              if ce_type_of(record.headers) == COMMAND_TYPE]
    return [value for value in values if value["to"] == contact]
