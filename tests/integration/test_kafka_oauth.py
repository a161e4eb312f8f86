"""OAUTHBEARER: Switchboard logs in to a cluster with tokens from an OAuth server (client
credentials), as Confluent Cloud or Strimzi with Keycloak want.

The test broker's SASL_SSL listener trusts the keys of `oauth_issuer`; the token endpoint runs
on 127.0.0.1. Records are checked through the same OAuth login, and through the plaintext
listener where that is the point."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from switchboard.localkafka import free_port
from switchboard.producer import DurableProducer
from switchboard.records import OutRecord
from switchboard.settings import Settings
from switchboard.topics import TopicSpec, ensure_topics
from switchboard.window import read_window
from tests.integration.webhooks import ingest_answers
from tests.kafka_helpers import SecuredKafka
from tests.oauth_server import Issuer, TokenEndpoint, token_endpoint

CLIENT_ID = "switchboard-oauth"
CLIENT_SECRET = secrets.token_urlsafe(16)
CLIENTS = {CLIENT_ID: CLIENT_SECRET}


def oauth(kafka: SecuredKafka, endpoint: TokenEndpoint, secret: str = CLIENT_SECRET,
          **more: Any) -> Settings:
    """The settings a user of such a cluster gives."""
    return Settings(kafka_bootstrap_servers=kafka.bootstrap, kafka_security_protocol="SASL_SSL",
                    kafka_sasl_mechanism="OAUTHBEARER", kafka_ssl_cafile=kafka.cafile,
                    kafka_oauth_token_url=endpoint.url, kafka_oauth_client_id=CLIENT_ID,
                    kafka_oauth_client_secret=secret, **more)


async def test_topics_records_and_reads_go_through_one_oauth_login(
        secured_kafka: SecuredKafka, oauth_issuer: Issuer) -> None:
    async with token_endpoint(oauth_issuer, CLIENTS) as endpoint:
        kafka = oauth(secured_kafka, endpoint, kafka_oauth_scope="kafka").kafka_connection()
        topic = f"test.oauth.{uuid.uuid4().hex[:8]}"
        await ensure_topics(kafka, partitions=2, replication_factor=1,
                            specs=(TopicSpec(topic, "test"),))
        producer = DurableProducer(kafka, timeout_s=10)
        await producer.start()
        try:
            await producer.publish([OutRecord(topic, b"record %d" % n, b"key %d" % n)
                                    for n in range(5)])
        finally:
            await producer.stop()
        async with aclosing(read_window(kafka, topic, role="test", since_ms=None,
                                        until_ms=None)) as records:
            values = sorted([record.value async for record in records])

    assert values == [b"record %d" % n for n in range(5)]
    # Admin, producer and consumer connections shared one token: asked for once.
    assert endpoint.requests == [{"grant_type": "client_credentials", "scope": "kafka"}]


async def test_ingest_stores_webhooks_through_an_oauth_login(
        secured_kafka: SecuredKafka, oauth_issuer: Issuer, kafka_bootstrap: str) -> None:
    async with token_endpoint(oauth_issuer, CLIENTS) as endpoint:
        ready, webhook, events = await ingest_answers(
            oauth(secured_kafka, endpoint, http_port=free_port()), kafka_bootstrap)
    assert ready.status_code == 200, ready.text
    assert webhook.status_code == 200, webhook.text
    assert len(events) == 1


async def test_a_client_the_token_endpoint_refuses_fails_the_start_without_its_secret(
        secured_kafka: SecuredKafka, oauth_issuer: Issuer,
        caplog: pytest.LogCaptureFixture) -> None:
    wrong = secrets.token_urlsafe(16)
    async with token_endpoint(oauth_issuer, CLIENTS) as endpoint:
        settings = oauth(secured_kafka, endpoint, wrong)
        producer = DurableProducer(settings.kafka_connection(), timeout_s=5)
        with pytest.raises(KafkaConnectionError):  # as `worker` and ingest handle it
            await asyncio.wait_for(producer.start(), 30)
    said = "\n".join(r.getMessage() for r in caplog.records)
    assert f"token endpoint {endpoint.url} answered 401: invalid_client" in said, said
    assert wrong not in said


async def test_a_token_the_cluster_does_not_trust_fails_the_start_and_says_so(
        secured_kafka: SecuredKafka, oauth_issuer: Issuer, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """aiokafka alone would take the refusal for success and reconnect for ever."""
    impostor = Issuer(tmp_path / "other-jwks.json")
    async with token_endpoint(oauth_issuer, CLIENTS, signer=impostor) as endpoint:
        producer = DurableProducer(oauth(secured_kafka, endpoint).kafka_connection(),
                                   timeout_s=5)
        with pytest.raises(KafkaConnectionError):
            await asyncio.wait_for(producer.start(), 30)
    said = [r.getMessage() for r in caplog.records if r.name in ("switchboard.oauth", "aiokafka")]
    assert any("kafka refused the oauth token" in m and "invalid_token" in m for m in said), said
    assert any("SaslAuthenticationFailed" in m for m in said), said
