"""The test broker's TLS + SASL listener, with aiokafka alone: every SASL mechanism it offers
produces and reads back; wrong credentials, an untrusted certificate and clients without TLS or
SASL are refused, and promptly."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError
from aiokafka.helpers import create_ssl_context

from switchboard.localkafka import SecuredListener
from tests.kafka_helpers import SecuredKafka

MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
# A refused client gives up after one attempt per bootstrap address; each took under 0.5 s.
REFUSED_WITHIN_S = 10.0
# Waits for a client that should work: generous, still bounded.
WORKS_WITHIN_S = 30.0


def _client(kafka: SecuredKafka, mechanism: str = "SCRAM-SHA-512", *,
            username: str | None = None, password: str | None = None) -> dict[str, Any]:
    return {
        "bootstrap_servers": kafka.bootstrap,
        "security_protocol": "SASL_SSL",
        "ssl_context": create_ssl_context(cafile=str(kafka.cafile)),
        "sasl_mechanism": mechanism,
        "sasl_plain_username": username or kafka.username,
        "sasl_plain_password": password or kafka.password,
        "request_timeout_ms": 10_000,
    }


@pytest.fixture(scope="module")
async def secured_topic(secured_kafka: SecuredKafka) -> str:
    """Created over the secured listener, so the admin client is covered too."""
    name = f"test.secured.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(**_client(secured_kafka))
    await asyncio.wait_for(admin.start(), WORKS_WITHIN_S)
    try:
        await asyncio.wait_for(admin.create_topics([NewTopic(name, 1, 1)]), WORKS_WITHIN_S)
    finally:
        await admin.close()
    return name


async def _produce_and_read_back(client: dict[str, Any], topic: str) -> None:
    marker = uuid.uuid4().bytes
    producer = AIOKafkaProducer(acks="all", **client)
    await asyncio.wait_for(producer.start(), WORKS_WITHIN_S)
    try:
        sent = await asyncio.wait_for(producer.send_and_wait(topic, marker), WORKS_WITHIN_S)
    finally:
        await producer.stop()
    # A group, so the coordinator is found and offsets committed through this listener as well.
    consumer = AIOKafkaConsumer(topic, group_id=f"secured-{uuid.uuid4().hex[:8]}",
                                auto_offset_reset="earliest", enable_auto_commit=False, **client)
    await asyncio.wait_for(consumer.start(), WORKS_WITHIN_S)
    try:
        deadline = time.monotonic() + WORKS_WITHIN_S
        while True:
            record = await asyncio.wait_for(consumer.getone(), deadline - time.monotonic())
            if record.value == marker:
                break
        assert (record.partition, record.offset) == (sent.partition, sent.offset)
        await asyncio.wait_for(consumer.commit(), WORKS_WITHIN_S)
    finally:
        await consumer.stop()


@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_each_mechanism_produces_and_reads_back(secured_kafka: SecuredKafka,
                                                      secured_topic: str, mechanism: str) -> None:
    await _produce_and_read_back(_client(secured_kafka, mechanism), secured_topic)


async def test_every_configured_user_is_accepted(secured_kafka: SecuredKafka,
                                                 secured_listener: SecuredListener,
                                                 secured_topic: str) -> None:
    assert len(secured_listener.users) > 1
    for username, password in secured_listener.users.items():
        for mechanism in ("PLAIN", "SCRAM-SHA-256"):
            producer = AIOKafkaProducer(**_client(secured_kafka, mechanism, username=username,
                                                  password=password))
            await asyncio.wait_for(producer.start(), WORKS_WITHIN_S)
            await producer.stop()


async def _refused(client: dict[str, Any], caplog: pytest.LogCaptureFixture) -> str:
    """Start a producer that must fail; return what aiokafka logged about why."""
    producer = AIOKafkaProducer(**client)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="aiokafka"):
        try:
            with pytest.raises(KafkaConnectionError):
                await asyncio.wait_for(producer.start(), REFUSED_WITHIN_S)
        finally:
            await producer.stop()
    assert time.monotonic() - started < REFUSED_WITHIN_S
    return "\n".join(record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("mechanism", MECHANISMS)
async def test_a_wrong_password_fails_the_start(secured_kafka: SecuredKafka, mechanism: str,
                                                caplog: pytest.LogCaptureFixture) -> None:
    why = await _refused(_client(secured_kafka, mechanism, password="not-the-password"),
                         caplog)
    assert "SaslAuthenticationFailed" in why


async def test_a_certificate_the_client_does_not_trust_fails_the_start(
        secured_kafka: SecuredKafka, caplog: pytest.LogCaptureFixture) -> None:
    # The system's CAs only: the broker's throwaway certificate is not among them.
    client = _client(secured_kafka) | {"ssl_context": create_ssl_context()}
    why = await _refused(client, caplog)
    assert "CERTIFICATE_VERIFY_FAILED" in why


@pytest.mark.parametrize("protocol", ["PLAINTEXT", "SSL", "SASL_PLAINTEXT"])
async def test_a_client_without_tls_or_sasl_does_not_connect(
        secured_kafka: SecuredKafka, protocol: str, caplog: pytest.LogCaptureFixture) -> None:
    client: dict[str, Any] = {"bootstrap_servers": secured_kafka.bootstrap,
                              "security_protocol": protocol, "request_timeout_ms": 5_000}
    if "SSL" in protocol:
        client["ssl_context"] = create_ssl_context(cafile=str(secured_kafka.cafile))
    if "SASL" in protocol:
        client |= {"sasl_mechanism": "PLAIN", "sasl_plain_username": secured_kafka.username,
                   "sasl_plain_password": secured_kafka.password}
    await _refused(client, caplog)
