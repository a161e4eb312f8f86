"""Ingest's public /readyz while Kafka has not answered since the start: the reason a prober
needs, as README says (`Kafka unreachable`), and what the client said only in the log."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from ingest.app import create_app
from switchboard.accounts import parse_accounts
from switchboard.settings import Settings

NOWHERE = "127.0.0.1:1"  # nothing listens: each connect fails at once


async def test_a_kafka_never_reached_is_unreachable_on_readyz_and_detailed_in_the_log(
        caplog: pytest.LogCaptureFixture) -> None:
    # It answered "Kafka producer not connected", a reason README does not list, naming the
    # client's inner workings to whoever asks on the webhook port.
    caplog.set_level(logging.INFO)
    app = create_app(Settings(kafka_bootstrap_servers=NOWHERE), parse_accounts({}))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://hooks.example") as client:
        for _ in range(100):  # bounded: 5 s for the first failed connect to be logged
            if any(isinstance(r.msg, dict) and r.msg["event"] == "kafka not reachable yet"
                   for r in caplog.records):
                break
            await asyncio.sleep(0.05)
        response = await client.get("/readyz")
    assert (response.status_code, response.json()) == (
        503, {"status": "unavailable", "reason": "Kafka unreachable"})
    [logged, *_] = [r.msg for r in caplog.records if isinstance(r.msg, dict)
                    and r.msg["event"] == "kafka not reachable yet"]
    assert logged["bootstrap"] == NOWHERE
    assert logged["error"]  # what the client said, for whoever reads the log
