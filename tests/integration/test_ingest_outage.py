"""Kafka goes away mid-traffic: ingest answers 503 (never 2xx), then recovers; nothing is lost."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest

from switchboard.accounts import parse_accounts
from tests.integration.conftest import TEST_ACCOUNTS, start_ingest
from tests.integration.processes import own_broker
from tests.integration.webhooks import basic, infobip_report
from tests.kafka_helpers import raw_message_ids


async def _post(client: httpx.AsyncClient, url: str, message_id: str) -> int:
    response = await client.post(url, content=infobip_report(message_id), headers=basic())
    return response.status_code


def _events(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.msg.get("event", "") for r in caplog.records if isinstance(r.msg, dict)]


async def test_broker_outage_gives_503s_then_recovers_without_loss(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with own_broker(tmp_path) as broker:
        accounts = parse_accounts({"accounts": {"it-infobip": TEST_ACCOUNTS["it-infobip"]}})
        server, task = await start_ingest(broker.bootstrap_servers, accounts,
                                          produce_timeout_s=2.0)
        url = server.url("infobip", "it-infobip")
        answered: dict[str, int] = {}
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                for _ in range(5):
                    message_id = f"before-{uuid.uuid4()}"
                    answered[message_id] = await _post(client, url, message_id)
                assert set(answered.values()) == {200}

                await asyncio.to_thread(broker.stop)
                during = {}
                for _ in range(4):
                    message_id = f"during-{uuid.uuid4()}"
                    during[message_id] = await _post(client, url, message_id)
                assert set(during.values()) == {503}, during
                answered |= during

                await asyncio.to_thread(broker.start)
                recovered = False
                for _ in range(30):  # bounded: up to ~60 s for the producer to reconnect
                    message_id = f"after-{uuid.uuid4()}"
                    answered[message_id] = await _post(client, url, message_id)
                    if answered[message_id] == 200:
                        recovered = True
                        break
                    await asyncio.sleep(1)
                assert recovered, "ingest did not recover after Kafka came back"
                for _ in range(5):
                    message_id = f"after-{uuid.uuid4()}"
                    answered[message_id] = await _post(client, url, message_id)
                    assert answered[message_id] == 200
        finally:
            server.server.should_exit = True
            await task

        assert set(answered.values()) <= {200, 503}, "only success or retry-later, never else"
        said = _events(caplog)  # the outage and the recovery, each once
        assert said.count("kafka is not taking records") == 1, said
        assert said.count("kafka is taking records again") == 1, said
        stored = await raw_message_ids(broker.bootstrap_servers)
        acknowledged = {m for m, status in answered.items() if status == 200}
        assert acknowledged <= stored, f"2xx but not in Kafka: {acknowledged - stored}"
