"""`serve --workers 2`: every scrape of /metrics counts the requests of both processes."""

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
        await wait_ready(base_url)
        url = f"{base_url}/webhooks/infobip/it-infobip"
        for _ in range(REQUESTS):  # a new connection each: both processes take some
            report = infobip_report(str(uuid.uuid4()))
            for _ in range(50):  # bounded: /readyz answered from one process; the other may
                async with httpx.AsyncClient(timeout=30) as client:  # still be connecting
                    answer = await client.post(url, content=report, headers=basic())
                if answer.status_code != 503:  # retried, as a provider would
                    break
                await asyncio.sleep(0.2)
            assert answer.status_code == 200
        for _ in range(6):
            async with httpx.AsyncClient(timeout=30) as client:
                assert _stored((await client.get(f"{base_url}/metrics")).text) == REQUESTS
    finally:
        server.send_signal(signal.SIGTERM)
        await asyncio.to_thread(server.communicate, timeout=60)
    assert server.returncode in (0, -signal.SIGTERM)
