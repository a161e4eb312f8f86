"""A bot restarted with messages waiting from a contact who opted out before: the opt-out list
is loaded from Kafka before the first of them is handled. Own module: no other workers."""

from __future__ import annotations

from pathlib import Path

import orjson

from switchboard.records import COMMAND_TYPE, ce_type_of
from switchboard.topics import OUTBOUND
from tests.integration.bots import RULES, new_contact, texts, texts_in_order, wait_replies
from tests.integration.stack import StackWatcher, isolated_prefix, running_stack

HELP = "E2E help: reply PRICE or ORDER <n>. STOP to opt out."


async def test_a_restarted_bot_makes_no_reply_to_an_opted_out_contact_s_waiting_messages(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(RULES)
    contact = new_contact()
    prefix = isolated_prefix()  # one install: its topics, groups and opt-out list
    async with running_stack(kafka_bootstrap, workers=("sender", "keywords"),
                             rules_file=rules_file, kafka_name_prefix=prefix) as stack:
        await texts(stack, contact, "STOP")
        assert await wait_replies(stack, contact, 1) == ["E2E: you are unsubscribed."]
    # The bot is down; the contact's messages wait in its group's partitions.
    async with running_stack(kafka_bootstrap, workers=("sender",), rules_file=rules_file,
                             kafka_name_prefix=prefix) as down:
        await texts_in_order(down, contact, "price", "order 7", "what?", "HELP")
    async with StackWatcher(kafka_bootstrap, prefix, (OUTBOUND.name,)) as watcher:
        before = await watcher.snapshot()
        async with running_stack(kafka_bootstrap, workers=("sender", "keywords"),
                                 rules_file=rules_file, kafka_name_prefix=prefix) as restarted:
            # HELP is the contact's last message: once answered, the others were handled.
            assert await wait_replies(restarted, contact, 1) == [HELP]
            found = await watcher.records_since(before)
    commands = [orjson.loads(record.value) for record in found.get(OUTBOUND.name, [])
                if ce_type_of(record.headers) == COMMAND_TYPE]
    # The bot's own: not a reply made and then refused by the sender.
    assert [(c["kind"], c["text"]) for c in commands if c["to"] == contact] == [("help", HELP)]
