"""Installs sharing a cluster: with a name prefix, every topic and consumer group Switchboard
uses is its own, and the whole loop (ingest, sender, correlation, bots, opt-outs) runs on them
without a record on the plain names."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from consumers.bots.rule_schema import AccountRules
from switchboard.clients import KafkaConnection
from switchboard.records import command_record
from switchboard.topics import (
    ALL_TOPICS,
    MESSAGE_INBOUND,
    MESSAGE_STATUS,
    OPT_OUTS,
    OUTBOUND_RESULTS,
    ensure_topics,
)
from tests.integration.bots import ACCOUNT, new_contact, texts, wait_replies
from tests.integration.processes import replay
from tests.integration.stack import CONTACTS, E2E_ACCOUNT_NAMES, Stack, command_for, running_stack
from tests.kafka_helpers import Offsets, TopicWatcher, collect_until, publish

PREFIX = f"it-{uuid.uuid4().hex[:8]}."


@pytest.fixture(scope="module")
async def stack(kafka_bootstrap: str) -> AsyncIterator[Stack]:
    # The plain topics exist too, as they would for another install on the cluster.
    await ensure_topics(kafka_bootstrap, partitions=1, replication_factor=1)
    async with running_stack(kafka_bootstrap, workers=("sender", "keywords"),
                             kafka_name_prefix=PREFIX) as running:
        yield running


def prefixed(*names: str) -> tuple[str, ...]:
    return tuple(PREFIX + name for name in names)


async def plain_records_since(stack: Stack, before: Offsets) -> list[bytes]:
    async with TopicWatcher(stack.bootstrap) as plain:
        found = await plain.records_since(before)
    return [record.value for records in found.values() for record in records]


async def plain_offsets(stack: Stack) -> Offsets:
    async with TopicWatcher(stack.bootstrap) as plain:
        return await plain.snapshot()


async def test_the_topics_and_groups_on_the_cluster_carry_the_prefix(stack: Stack) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.bootstrap)
    await admin.start()
    try:
        topics = set(await admin.list_topics())
        groups = {group[0] for group in await admin.list_consumer_groups()}
    finally:
        await admin.close()
    assert set(prefixed(*(spec.name for spec in ALL_TOPICS))) <= topics
    assert {PREFIX + "switchboard-sender", PREFIX + "switchboard-keywords"} <= groups


async def test_a_command_is_sent_and_its_report_correlated_on_the_prefixed_topics(
        stack: Stack) -> None:
    # Omnichat's reports are correlated by ingest's index of the (prefixed) results topic.
    provider = "infobip-omnichat"
    command = command_for(provider)
    plain_before = await plain_offsets(stack)
    topics = prefixed(OUTBOUND_RESULTS.name, MESSAGE_STATUS.name)
    async with TopicWatcher(stack.bootstrap, topics) as watcher:
        before = await watcher.snapshot()
        await publish(KafkaConnection(stack.bootstrap, name_prefix=PREFIX),
                      [command_record(command, provider)])

        def reports(found: dict[str, list[Any]]) -> list[dict[str, Any]]:
            return [orjson.loads(r.value) for r in found.get(PREFIX + MESSAGE_STATUS.name, [])]

        def delivered(found: dict[str, list[Any]]) -> bool:
            return any(r["status"] == "delivered" and r["correlation_id"] == command.id
                       for r in reports(found))

        found = await collect_until(watcher, before, delivered)

    [result] = [orjson.loads(r.value) for r in found[PREFIX + OUTBOUND_RESULTS.name]
                if orjson.loads(r.value)["command_id"] == command.id]
    assert result["status"] == "accepted"
    assert result["account"] == E2E_ACCOUNT_NAMES[provider] == command.account
    assert command.to == CONTACTS[provider]
    leaked = [value for value in await plain_records_since(stack, plain_before)
              if command.id.encode() in value or result["provider_message_id"].encode() in value]
    assert leaked == [], "nothing of this install lands on the plain topics"


async def test_stop_opts_out_on_the_prefixed_topic_and_the_sender_honours_it(
        stack: Stack) -> None:
    contact = new_contact()
    plain_before = await plain_offsets(stack)
    topics = prefixed(OPT_OUTS.name, MESSAGE_INBOUND.name, OUTBOUND_RESULTS.name)
    async with TopicWatcher(stack.bootstrap, topics) as watcher:
        before = await watcher.snapshot()
        await texts(stack, contact, "STOP")
        [confirmation] = await wait_replies(stack, contact, 1)
        assert confirmation == AccountRules().stop_confirmation  # no rules file: the default

        command = command_for("infobip")
        command = command.model_copy(update={"account": ACCOUNT, "to": contact})
        await publish(KafkaConnection(stack.bootstrap, name_prefix=PREFIX),
                      [command_record(command, "infobip")])

        def refused(found: dict[str, list[Any]]) -> bool:
            return any(orjson.loads(r.value)["command_id"] == command.id
                       for r in found.get(PREFIX + OUTBOUND_RESULTS.name, []))

        found = await collect_until(watcher, before, refused)

    opt_outs = [orjson.loads(r.value) for r in found.get(PREFIX + OPT_OUTS.name, [])]
    assert [o["opted_out"] for o in opt_outs if o["contact"] == contact] == [True]
    [result] = [orjson.loads(r.value) for r in found[PREFIX + OUTBOUND_RESULTS.name]
                if orjson.loads(r.value)["command_id"] == command.id]
    assert result["status"] == "failed" and result["error"]["code"] == "opted_out", result
    leaked = [value for value in await plain_records_since(stack, plain_before)
              if contact.encode() in value]
    assert leaked == [], "nothing of this install lands on the plain topics"


async def test_a_dead_letter_lands_on_the_prefixed_topic_and_replay_reads_it_there(
        stack: Stack) -> None:
    url = stack.ingest.url("infobip", ACCOUNT)
    async with httpx.AsyncClient() as client:
        response = await client.post(url, content=b'{"results": [', auth=("ib", "e2e-ib-webhook"),
                                     headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text

    code, lines, err = await replay(stack.bootstrap, "--dry-run", since="10m", prefix=PREFIX)
    # The only letter of this install: the plain dead-letter topic has the session's others.
    assert code == 3, err
    assert [(line["provider"], line["account"], line["outcome"]) for line in lines] == [
        ("infobip", ACCOUNT, "failing")]
