"""Ingest's start-up check of the topics' max.message.bytes as the cluster has it."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from switchboard.accounts import parse_accounts
from switchboard.topics import DEAD_LETTER, RAW, TopicSpec, ensure_topics, max_message_bytes
from tests.integration.conftest import TEST_ACCOUNTS, start_ingest


def _warnings(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [r.msg for r in caplog.records if isinstance(r.msg, dict)
            and str(r.msg.get("event", "")).startswith("topic takes smaller records")]


async def test_a_raw_topic_at_kafkas_default_limit_is_named_at_start(
        kafka_bootstrap: str, caplog: pytest.LogCaptureFixture) -> None:
    """A raw topic made by hand (or by an older version) at Kafka's 1 MB default refuses a
    webhook of about 1 MB at every retry of its provider, and nothing said so until one came:
    ingest checked our own 2 MiB setting, not the cluster's. It starts all the same, and says
    which topic, its limit and the command that fixes it."""
    prefix = f"limits-{uuid.uuid4().hex[:8]}."
    raw = prefix + RAW.name
    await ensure_topics(kafka_bootstrap, partitions=1, replication_factor=1,
                        specs=(TopicSpec(raw, "by hand, no max.message.bytes"),))
    accounts = parse_accounts({"accounts": {"it-infobip": TEST_ACCOUNTS["it-infobip"]}})
    server, task = await start_ingest(kafka_bootstrap, accounts, kafka_name_prefix=prefix)
    try:
        for _ in range(100):  # logged just after the producer connects
            if _warnings(caplog):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # the dead-letter topic's line, had there been one
    finally:
        server.server.should_exit = True
        await task
    [warning] = _warnings(caplog)
    assert warning["topic"] == raw
    assert warning["max_message_bytes"] < RAW.max_message_bytes
    assert warning["needed"] == RAW.max_message_bytes
    assert f"--entity-name {raw} --add-config max.message.bytes=2097152" in warning["fix"]


async def test_max_message_bytes_reads_the_clusters_value(kafka_bootstrap: str) -> None:
    own = f"test.limit.{uuid.uuid4().hex[:8]}"
    default = f"test.default.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, partitions=1, replication_factor=1,
                        specs=(TopicSpec(own, "test", {"max.message.bytes": "100000"}),
                               TopicSpec(default, "test")))
    limits, unreadable = await max_message_bytes(kafka_bootstrap, (TopicSpec(own, "test"),
                                                       TopicSpec(default, "test"),
                                                       TopicSpec("test.absent", "test")))
    assert limits == {own: 100000, default: 1_048_588}
    assert unreadable == {}
    assert DEAD_LETTER.max_message_bytes == RAW.max_message_bytes
