"""SWITCHBOARD_SIMULATOR_WEBHOOK_QUEUE reaches `switchboard simulate`'s webhook queue (a real
process on 127.0.0.1), and the setting's default is the simulator's own."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx

from bench.common import wait_http
from simulator.webhooks import WEBHOOK_QUEUE_LIMIT
from switchboard.localkafka import free_port, stop_process
from switchboard.settings import Settings

EXAMPLE_ACCOUNTS = Path(__file__).parents[2] / "examples" / "accounts.toml"


def test_the_default_is_the_simulators() -> None:
    assert Settings.model_fields["simulator_webhook_queue"].default == WEBHOOK_QUEUE_LIMIT


def test_simulate_bounds_its_webhook_queue_as_set() -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    port = free_port()
    env = clean | {"SWITCHBOARD_ACCOUNTS_FILE": str(EXAMPLE_ACCOUNTS),
                   "SWITCHBOARD_SIMULATOR_PORT": str(port),
                   "SWITCHBOARD_SIMULATOR_WEBHOOK_QUEUE": "7"}
    simulator = subprocess.Popen([sys.executable, "-m", "switchboard.cli", "simulate"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        asyncio.run(wait_http(f"{base}/_sim/webhooks"))
        assert httpx.get(f"{base}/_sim/webhooks", timeout=30).json()["queue_limit"] == 7
    finally:
        stop_process(simulator, 60)
