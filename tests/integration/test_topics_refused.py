"""Kafka answering the start with a refusal to create the topics (here a replication factor
above the one broker the test cluster has): ingest's /readyz and its log, and a worker's
error line, say what Kafka answered. Ingest said `Kafka unreachable` and logged `kafka not
reachable yet`, sending the operator to the network for what a setting causes."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import uuid
from typing import Any

import httpx
import pytest
import uvicorn

from ingest.app import create_app
from switchboard.accounts import parse_accounts
from switchboard.localkafka import free_port
from switchboard.serving import EmbeddedServer
from switchboard.settings import Settings
from tests.integration.conftest import TEST_ACCOUNTS
from tests.integration.processes import REPO, worker_environment

REFUSED = "kafka refused to create the topics"


def _logged(caplog: pytest.LogCaptureFixture, event: str) -> list[dict[str, Any]]:
    return [r.msg for r in caplog.records if isinstance(r.msg, dict) and r.msg["event"] == event]


async def test_ingest_says_kafka_refused_the_topics_not_that_it_is_unreachable(
        kafka_bootstrap: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    port = free_port()
    settings = Settings(kafka_bootstrap_servers=kafka_bootstrap, http_port=port,
                        kafka_name_prefix=f"it-refused-{uuid.uuid4().hex[:8]}.",
                        topic_replication_factor=3)  # the session's cluster has one broker
    accounts = parse_accounts({"accounts": {"it-infobip": TEST_ACCOUNTS["it-infobip"]}})
    server = EmbeddedServer(uvicorn.Config(create_app(settings, accounts), host="127.0.0.1",
                                           port=port, log_config=None, access_log=False,
                                           lifespan="on"))
    serving = asyncio.create_task(server.serve())
    try:
        for _ in range(300):  # bounded: 30 s for the first refusal
            if server.started and _logged(caplog, REFUSED):
                break
            await asyncio.sleep(0.1)
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(f"http://127.0.0.1:{port}/readyz")
    finally:
        server.should_exit = True
        await serving
    assert (response.status_code, response.json()) == (503, {
        "status": "unavailable",
        "reason": "Kafka refused to create the topics: INVALID_REPLICATION_FACTOR"})
    [first, *_] = _logged(caplog, REFUSED)
    assert first["bootstrap"] == kafka_bootstrap
    assert first["error"].startswith(f"Kafka refused to create topic {settings.kafka_name_prefix}")
    assert "INVALID_REPLICATION_FACTOR" in first["error"]
    assert "SWITCHBOARD_TOPIC_REPLICATION_FACTOR is 3" in first["error"]
    assert not _logged(caplog, "kafka not reachable yet")


def test_a_worker_says_kafka_refused_the_topics_and_the_setting_to_change(
        kafka_bootstrap: str) -> None:
    prefix = f"it-refused-{uuid.uuid4().hex[:8]}."  # topics of its own, none created yet
    env = worker_environment(kafka_bootstrap, prefix) | {
        "SWITCHBOARD_TOPIC_REPLICATION_FACTOR": "3", "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-m", "switchboard.cli", "worker", "sender"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                            check=False)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert error.startswith(f"error: cannot create the missing topics: Kafka refused to create "
                            f"topic {prefix}"), error
    assert ": INVALID_REPLICATION_FACTOR (" in error, error
    assert "; SWITCHBOARD_TOPIC_REPLICATION_FACTOR is 3: at most the number of brokers" in error
