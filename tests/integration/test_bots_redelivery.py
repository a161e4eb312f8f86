"""A keyword bot that handles a contact's messages again after a restart (its group's commits
lost or rewound: Kafka redelivers) makes the same commands, and the contact gets each reply
once; their STOP and START handled again leave them as their last word did. Own module: no
other workers."""

from __future__ import annotations

from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from switchboard.clients import kafka_options
from switchboard.topics import MESSAGE_INBOUND
from tests.integration.bots import (
    RULES,
    command_result,
    new_contact,
    texts,
    texts_in_order,
    wait_replies,
)
from tests.integration.stack import STACK_PARTITIONS, isolated_prefix, running_stack

HELP = "E2E help: reply PRICE or ORDER <n>. STOP to opt out."


async def _rewind(bootstrap: str, prefix: str, group: str) -> None:
    """The group's commits on the inbound topic back to its first record: as if the bot had
    stopped before committing any of what it handled."""
    topic = prefix + MESSAGE_INBOUND.name
    consumer = AIOKafkaConsumer(**kafka_options(bootstrap, "test-rewind"), group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(STACK_PARTITIONS)]
        consumer.assign(partitions)
        await consumer.commit({tp: 0 for tp in partitions})
    finally:
        await consumer.stop()


async def test_messages_handled_again_after_a_restart_are_answered_once(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    rules_file = tmp_path / "rules.toml"
    rules_file.write_text(RULES)
    contact = new_contact()
    prefix = isolated_prefix()  # one install, and its inbound topic this test's alone
    answered = [f"E2E price list for {contact}", "E2E: you are unsubscribed.",
                "E2E: welcome back.", "E2E order 5 confirmed"]
    async with running_stack(kafka_bootstrap, workers=("sender", "keywords"),
                             rules_file=rules_file, kafka_name_prefix=prefix) as stack:
        await texts_in_order(stack, contact, "price", "STOP", "START", "order 5")
        assert await wait_replies(stack, contact, 4) == answered
        group = stack.workers["keywords"].group_id
    await _rewind(kafka_bootstrap, prefix, group)
    async with running_stack(kafka_bootstrap, workers=("sender", "keywords"),
                             rules_file=rules_file, kafka_name_prefix=prefix) as restarted:
        await texts(restarted, contact, "HELP")  # after the four, in their partition
        # The simulator keeps what each stack's sender sent: this one's, HELP's alone.
        assert await wait_replies(restarted, contact, 1) == [HELP]
        allowed = await command_result(restarted, contact)
        assert allowed["status"] == "accepted", "still subscribed: their START is their latest"
