"""A `switchboard worker` exports the runtime's metric families and its own, not the other
workers': the sender showed `switchboard_bot_rules_reload_failures_total 0`, a bot the
sender's # TYPE lines. Scraped from the real command while it waits for a Kafka that never
answers (a socket on 127.0.0.1 that takes connections and says nothing): its metrics are
served before it asks Kafka anything."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bench.common import wait_http
from switchboard.localkafka import free_port, stop_process

REPO = Path(__file__).parents[2]


def _scrape(worker: list[str], tmp_path: Path) -> str:
    metrics_port = free_port()
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("SWITCHBOARD_", "PROMETHEUS_", "KAFKA_BOOTSTRAP_"))}
    with socket.create_server(("127.0.0.1", 0)) as silent, (tmp_path / "stderr").open("w") as err:
        env = clean | {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{silent.getsockname()[1]}",
                       "SWITCHBOARD_ACCOUNTS_FILE": str(REPO / "examples" / "accounts.toml"),
                       "SWITCHBOARD_METRICS_PORT": str(metrics_port)}
        process = subprocess.Popen([sys.executable, "-m", "switchboard.cli", "worker", *worker],
                                   cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err)
        try:
            asyncio.run(wait_http(f"http://127.0.0.1:{metrics_port}/healthz", timeout_s=30))
            scrape = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
            # prometheus-client's own filter by name still applies to what is exported
            one = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics",
                            params={"name[]": "python_gc_objects_collected_total"}, timeout=10)
            assert _families(one.text) == {"python_gc_objects_collected_total"}, one.text
        finally:
            stop_process(process, 30)
    assert process.returncode == 0, (tmp_path / "stderr").read_text()  # stopped as it started
    return scrape


def _families(scrape: str) -> set[str]:
    return {line.split()[2] for line in scrape.splitlines() if line.startswith("# TYPE ")}


@pytest.mark.parametrize(("worker", "own", "others"), [
    (["sender"], "switchboard_sender_", "switchboard_bot_"),
    (["keywords"], "switchboard_bot_", "switchboard_sender_"),
    (["autoreply"], "switchboard_bot_", "switchboard_sender_"),
])
def test_a_worker_exports_its_own_families_and_the_runtimes(
        worker: list[str], own: str, others: str, tmp_path: Path) -> None:
    families = _families(_scrape(worker, tmp_path))
    assert {name for name in families if name.startswith(others)} == set()
    assert any(name.startswith(own) for name in families), families
    assert "switchboard_worker_records_total" in families  # the runtime's, every worker's
    assert "python_gc_objects_collected_total" in families  # the process's stay
