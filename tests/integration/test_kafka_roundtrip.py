"""The real broker: durable produce, group consumption, commit and resume."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from types import MethodType

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from consumers.ledger import decode_ledger
from consumers.sender import Sender
from consumers.table import CompactedTable
from consumers.workers import sender_worker
from switchboard.accounts import parse_accounts
from switchboard.settings import Settings
from switchboard.topics import (
    LEDGER_RETENTION_DAYS,
    OUTBOUND,
    OUTBOUND_SENT,
    TopicSpec,
    ensure_topics,
)
from tests.integration.processes import own_broker


async def _consume(bootstrap: str, topic: str, group: str, count: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        values: list[bytes] = []
        while len(values) < count:
            batch = await consumer.getmany(timeout_ms=10_000, max_records=count - len(values))
            assert batch, "no records within 10s"
            for records in batch.values():
                values.extend(record.value for record in records)
        await consumer.commit()
        return values
    finally:
        await consumer.stop()


async def test_acks_all_produce_then_group_commit_and_resume(kafka_bootstrap: str) -> None:
    topic = f"test.roundtrip.{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, partitions=1, replication_factor=1,
                        specs=(TopicSpec(topic, "test"),))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all",
                                enable_idempotence=True)
    await producer.start()
    try:
        sent = [f"record-{i}".encode() for i in range(10)]
        for value in sent:
            metadata = await producer.send_and_wait(topic, value)
            assert metadata.offset >= 0
    finally:
        await producer.stop()

    group = f"g-{uuid.uuid4().hex[:8]}"
    first = await _consume(kafka_bootstrap, topic, group, 4)
    assert first == sent[:4]

    # A new consumer in the same group (a restart) resumes after the committed offset.
    rest = await _consume(kafka_bootstrap, topic, group, 6)
    assert rest == sent[4:]

    check = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group)
    await check.start()
    try:
        assert await check.committed(TopicPartition(topic, 0)) == 10
    finally:
        await check.stop()


async def test_created_topics_have_every_partition_led_when_ensure_returns(
        kafka_bootstrap: str) -> None:
    # Clients started right after must not meet a partition without a leader.
    topic = f"test.leaders.{uuid.uuid4().hex[:8]}"
    created = await ensure_topics(kafka_bootstrap, partitions=6, replication_factor=1,
                                  specs=(TopicSpec(topic, "test"),))
    assert created == [topic]
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    assert sorted(p["partition"] for p in described["partitions"]) == list(range(6))
    assert all(p["leader"] >= 0 for p in described["partitions"])


async def test_created_topics_carry_their_settings(kafka_bootstrap: str) -> None:
    topic = f"test.settings.{uuid.uuid4().hex[:8]}"
    spec = TopicSpec(topic, "test", {"retention.ms": "3600000"})
    await ensure_topics(kafka_bootstrap, partitions=1, replication_factor=1, specs=(spec,))
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC,
                                                                  topic)])
    finally:
        await admin.close()
    [(_, _, _, _, entries)] = response.resources
    # (value, source): source 1 is DYNAMIC_TOPIC_CONFIG, set on the topic (not the broker's).
    settings = {name: (value, source) for name, value, _, source, *_ in entries}
    assert settings["retention.ms"] == ("3600000", 1)
    assert settings["min.insync.replicas"] == ("1", 1)  # one replica: one copy is all there is



async def test_a_table_on_new_topics_starts_without_kafka_errors(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # A leader named in the metadata may not have taken its partition on yet: the sender's
    # ledger (a compacted table) asks for offsets right at start, and aiokafka logs that
    # refusal as an error. It shows on a broker's first topics: this test has its own broker.
    async with own_broker(tmp_path, partitions=4) as broker:
        table = CompactedTable(broker.bootstrap_servers, OUTBOUND_SENT.name, decode_ledger)
        with caplog.at_level(logging.WARNING, logger="aiokafka"):
            await table.start()
        await table.stop()
    assert len(table) == 0
    assert [r.getMessage() for r in caplog.records if r.name.startswith("aiokafka")] == []


async def test_the_senders_ledger_topic_deletes_ids_after_its_retention(
        kafka_bootstrap: str) -> None:
    # Compaction alone keeps every command id ever sent: each sender would read them all at
    # start and hold them in memory. This checks the topic the broker has; the table's own
    # forgetting (CompactedTable max_age_s) is tested in tests/unit/test_compacted_table.py.
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, OUTBOUND_SENT.name)])
    finally:
        await admin.close()
    configs = {entry[0]: entry[1] for resource in response.resources for entry in resource[4]}
    assert configs["cleanup.policy"] == "compact,delete"
    assert int(configs["retention.ms"]) == LEDGER_RETENTION_DAYS * 24 * 3600 * 1000


async def test_the_senders_ledger_forgets_ids_when_its_topic_does(kafka_bootstrap: str) -> None:
    # The ledger the sender holds in memory drops an id when the ledger topic deletes it: kept
    # longer, a restarted sender (which reads the topic) would not have it anyway; dropped
    # sooner, a command the outbound topic still holds could be redelivered and sent twice.
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap)
    async with sender_worker(settings, parse_accounts({"accounts": {}})) as runtime:
        assert isinstance(runtime.handler, MethodType)
        sender = runtime.handler.__self__
        assert isinstance(sender, Sender)
        max_age_s = sender.ledger.max_age_s
    assert max_age_s == int(OUTBOUND_SENT.config["retention.ms"]) / 1000
    assert max_age_s is not None and max_age_s > int(OUTBOUND.config["retention.ms"]) / 1000
