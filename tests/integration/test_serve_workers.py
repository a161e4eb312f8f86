"""`serve --workers 2`: /readyz waits for both processes; every scrape of /metrics counts the
requests of both."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import httpx

from switchboard.localkafka import free_port
from tests.integration.processes import ingest_environment, switchboard, wait_ready
from tests.integration.test_ingest_behaviour import basic, infobip_report

REQUESTS = 12


def _stored(metrics: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("switchboard_ingest_requests_total{")
               and 'outcome="stored"' in line)


async def test_metrics_are_summed_over_worker_processes(kafka_bootstrap: str,
                                                        tmp_path: Path) -> None:
    port = free_port()
    server = switchboard(ingest_environment(tmp_path, kafka_bootstrap), "serve", "--host",
                          "127.0.0.1", "--port", str(port), "--workers", "2")
    try:
        base_url = f"http://127.0.0.1:{port}"
        # Ready means every process is: whichever takes a request below stores it.
        await wait_ready(base_url)
        url = f"{base_url}/webhooks/infobip/it-infobip"
        for _ in range(REQUESTS):  # a new connection each: both processes take some
            async with httpx.AsyncClient(timeout=30) as client:
                answer = await client.post(url, content=infobip_report(str(uuid.uuid4())),
                                           headers=basic())
            assert answer.status_code == 200
        for _ in range(6):
            async with httpx.AsyncClient(timeout=30) as client:
                assert _stored((await client.get(f"{base_url}/metrics")).text) == REQUESTS
    finally:
        server.send_signal(signal.SIGTERM)
        await asyncio.to_thread(server.communicate, timeout=60)
    assert server.returncode in (0, -signal.SIGTERM)
