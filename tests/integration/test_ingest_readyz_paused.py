"""Ingest's /readyz while its broker answers nothing (paused: connections open, nothing
answered, as in a network partition or a JVM's long pause): unready within seconds, each probe
answered within its check's bound, and ready again once the broker answers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx

from switchboard.accounts import parse_accounts
from tests.integration.conftest import TEST_ACCOUNTS, start_ingest
from tests.integration.processes import own_broker, paused

PAUSED_S = 30.0


async def test_readyz_follows_a_paused_broker(tmp_path: Path) -> None:
    async with own_broker(tmp_path) as broker:
        assert broker.process is not None
        accounts = parse_accounts({"accounts": {"it-infobip": TEST_ACCOUNTS["it-infobip"]}})
        server, task = await start_ingest(broker.bootstrap_servers, accounts)
        while_paused: list[tuple[float, int, str, float]] = []
        try:
            async with httpx.AsyncClient(timeout=30) as client:
                async def probe() -> tuple[int, str, float]:
                    began = time.monotonic()
                    response = await client.get(f"{server.base_url}/readyz")
                    return (response.status_code, response.json().get("reason", ""),
                            time.monotonic() - began)

                assert (await probe())[0] == 200
                began = time.monotonic()
                with paused(broker):
                    while time.monotonic() - began < PAUSED_S:
                        while_paused.append((time.monotonic() - began, *await probe()))
                        await asyncio.sleep(1)
                resumed = time.monotonic()
                for _ in range(60):  # bounded: a minute
                    if (await probe())[0] == 200:
                        break
                    await asyncio.sleep(1)
                ready_after_s = time.monotonic() - resumed
        finally:
            server.server.should_exit = True
            await task
    # A check asks Kafka for at most 5 s; the answer is kept 5 s.
    assert all(took_s < 10 for *_, took_s in while_paused), while_paused
    assert all(status == 503 and reason == "Kafka unreachable"
               for at, status, reason, _ in while_paused if at > 15), while_paused
    assert ready_after_s < 30, f"not ready {ready_after_s:.0f} s after the broker answered"
