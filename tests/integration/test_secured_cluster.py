"""Switchboard on a cluster that wants TLS and a SASL login, as managed clusters do.

The services are given only the broker's SASL_SSL listener, which refuses plaintext clients;
the tests watch the same topics through the broker's plaintext listener.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from aiokafka.admin import AIOKafkaAdminClient

from ingest.app import create_app
from switchboard.accounts import parse_accounts
from switchboard.commands import OutboundCommand
from switchboard.localkafka import free_port
from switchboard.records import OutRecord, command_record
from switchboard.serving import EmbeddedServer
from switchboard.settings import Settings
from switchboard.topics import MESSAGE_STATUS, OUTBOUND_RESULTS
from tests.integration.conftest import TEST_ACCOUNTS
from tests.integration.stack import CONTACTS, E2E_ACCOUNT_NAMES, Stack, running_stack
from tests.integration.webhooks import ingest_answers
from tests.kafka_helpers import SecuredKafka, collect_until, publish


def sasl_ssl(kafka: SecuredKafka, mechanism: str, password: str | None = None) -> dict[str, Any]:
    """The settings a user of a managed cluster gives (as Settings fields)."""
    return {"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": mechanism,
            "kafka_sasl_username": kafka.username,
            "kafka_sasl_password": password or kafka.password, "kafka_ssl_cafile": kafka.cafile}


@pytest.fixture(scope="module")
async def stack(secured_kafka: SecuredKafka) -> AsyncIterator[Stack]:
    async with running_stack(secured_kafka.bootstrap, kafka_client_id="acme-sms",
                             **sasl_ssl(secured_kafka, "SCRAM-SHA-512")) as running:
        yield running


async def test_a_command_is_sent_and_its_delivery_comes_back_over_sasl_ssl(
        stack: Stack, kafka_bootstrap: str) -> None:
    """Sender (commands in, ledger and opt-out tables, results out) and ingest (topics check,
    durable publish, correlation reader) all reach Kafka through the secured listener."""
    command = OutboundCommand(id=f"cmd-{uuid.uuid4()}", account=E2E_ACCOUNT_NAMES["infobip"],
                              to=CONTACTS["infobip"], text="over TLS",
                              created_at=datetime.now(UTC))
    topics = (OUTBOUND_RESULTS.name, MESSAGE_STATUS.name)
    async with stack.watching(topics, kafka_bootstrap) as watcher:
        before = await watcher.snapshot()
        await publish(stack.kafka(kafka_bootstrap), [command_record(command, "infobip")])

        def delivered(found: dict[str, list[Any]]) -> bool:
            statuses = [orjson.loads(r.value) for r in found.get(MESSAGE_STATUS.name, [])]
            return any(s["correlation_id"] == command.id and s["status"] == "delivered"
                       for s in statuses)

        found = await collect_until(watcher, before, delivered)
    [result] = [v for v in (orjson.loads(r.value) for r in found[OUTBOUND_RESULTS.name])
                if v["command_id"] == command.id]
    assert result["status"] == "accepted"
    async with httpx.AsyncClient() as client:
        ready = await client.get(f"{stack.ingest.base_url}/readyz")
    assert ready.status_code == 200, ready.text


async def test_the_broker_sees_the_configured_client_id(stack: Stack, kafka_bootstrap: str) -> None:
    """Brokers log, throttle and authorize by client id; the group id stays (a new one would
    start the group again from its first or last offset)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_consumer_groups([stack.prefix + "switchboard-sender"])
    finally:
        await admin.close()
    [group] = response.to_object()["groups"]
    assert {member["client_id"] for member in group["members"]} == {"acme-sms-sender"}


async def test_a_wrong_password_leaves_ingest_not_ready_and_answering_503(
        secured_kafka: SecuredKafka) -> None:
    port = free_port()
    settings = Settings(kafka_bootstrap_servers=secured_kafka.bootstrap, http_port=port,
                        produce_timeout_s=1,
                        **sasl_ssl(secured_kafka, "PLAIN", password="not-the-password"))
    app = create_app(settings, parse_accounts({"accounts": TEST_ACCOUNTS}))
    server = EmbeddedServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                           access_log=False, lifespan="on"))
    task = asyncio.create_task(server.serve())
    try:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(timeout=10) as client:
            for _ in range(100):  # bounded: 5 s for the server to listen
                if server.started:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(2)  # a few refused logins
            ready = await client.get(f"{base}/readyz")
            webhook = await client.post(f"{base}/webhooks/ubiqio/it-ubiqio",
                                        params={"token": "ubiqio-token-123"},
                                        json={"messageId": "m-1", "status": 1})
    finally:
        server.should_exit = True
        await task
    assert ready.status_code == 503
    assert ready.json() == {"status": "unavailable", "reason": "Kafka unreachable"}
    assert webhook.status_code == 503, webhook.text


async def test_tail_reads_a_secured_cluster_from_environment_settings(
        secured_kafka: SecuredKafka, kafka_bootstrap: str) -> None:
    marker = uuid.uuid4().hex
    await publish(kafka_bootstrap, [OutRecord(MESSAGE_STATUS.name,
                                              orjson.dumps({"marker": marker}), b"tail-test")])
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SWITCHBOARD_") and k != "KAFKA_BOOTSTRAP_SERVERS"}
    env |= {"KAFKA_BOOTSTRAP_SERVERS": secured_kafka.bootstrap,
            "SWITCHBOARD_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "SWITCHBOARD_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
            "SWITCHBOARD_KAFKA_SASL_USERNAME": secured_kafka.username,
            "SWITCHBOARD_KAFKA_SASL_PASSWORD": secured_kafka.password,
            "SWITCHBOARD_KAFKA_SSL_CAFILE": str(secured_kafka.cafile)}
    # Reads from the oldest record: stops at ours (bounded by count and by time).
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "switchboard.cli", "tail", "--all", "--topic", MESSAGE_STATUS.name,
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None
    found = False
    try:
        async with asyncio.timeout(60):
            async for line in process.stdout:
                if orjson.loads(line)["value"] == {"marker": marker}:
                    found = True
                    break
    finally:
        process.terminate()
        _, stderr = await process.communicate()
    assert found, stderr.decode()[-2000:]
    assert secured_kafka.password not in stderr.decode()


def _mutual_tls(kafka: SecuredKafka, *, with_certificate: bool) -> Settings:
    return Settings(kafka_bootstrap_servers=kafka.mtls_bootstrap, http_port=free_port(),
                    produce_timeout_s=2, kafka_security_protocol="SSL",
                    kafka_ssl_cafile=kafka.cafile,
                    kafka_ssl_certfile=kafka.client.certfile if with_certificate else None,
                    kafka_ssl_keyfile=kafka.client.keyfile if with_certificate else None)


async def test_ingest_logs_in_with_a_client_certificate(
        secured_kafka: SecuredKafka, kafka_bootstrap: str) -> None:
    ready, webhook, events = await ingest_answers(
        _mutual_tls(secured_kafka, with_certificate=True), kafka_bootstrap)
    assert ready.status_code == 200, ready.text
    assert webhook.status_code == 200, webhook.text
    assert len(events) == 1  # stored through the mutual-TLS listener


async def test_without_its_client_certificate_ingest_stores_nothing(
        secured_kafka: SecuredKafka, kafka_bootstrap: str) -> None:
    ready, webhook, events = await ingest_answers(
        _mutual_tls(secured_kafka, with_certificate=False), kafka_bootstrap)
    assert ready.status_code == 503
    assert webhook.status_code == 503, webhook.text
    assert events == []
