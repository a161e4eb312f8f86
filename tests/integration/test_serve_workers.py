"""`serve --workers 2`: /readyz waits for both processes; both take requests, and every scrape
of /metrics counts the requests of both."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import httpx
from prometheus_client.multiprocess import MultiProcessCollector

from switchboard.localkafka import free_port
from switchboard.serving import MULTIPROCESS_DIR_ENV
from tests.integration.processes import ingest_environment, switchboard, wait_ready
from tests.integration.webhooks import basic, infobip_report

PROCESSES = 2
MAX_REQUESTS = 200  # new connections until each process has taken some; most take a dozen


def _stored(metrics: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("switchboard_ingest_requests_total{")
               and 'outcome="stored"' in line)


def _stored_by_process(directory: Path) -> dict[int, float]:
    """Requests stored per process, from the counter files each keeps in the shared directory
    (prometheus-client's multiprocess mode: counter_<pid>.db)."""
    stored: dict[int, float] = {}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.removeprefix("counter_"))
        stored[pid] = sum(sample.value for metric in MultiProcessCollector.merge([str(path)])
                          for sample in metric.samples
                          if sample.name == "switchboard_ingest_requests_total"
                          and sample.labels.get("outcome") == "stored")
    return stored


async def test_both_processes_take_requests_and_metrics_sum_them(kafka_bootstrap: str,
                                                                 tmp_path: Path) -> None:
    port = free_port()
    shared = tmp_path / "metrics"  # where `serve` would otherwise make a temporary one
    shared.mkdir()
    env = ingest_environment(tmp_path, kafka_bootstrap) | {MULTIPROCESS_DIR_ENV: str(shared)}
    server = switchboard(env, "serve", "--host", "127.0.0.1", "--port", str(port),
                         "--workers", str(PROCESSES))
    try:
        base_url = f"http://127.0.0.1:{port}"
        # Ready means every process is: whichever takes a request below stores it.
        await wait_ready(base_url)
        url = f"{base_url}/webhooks/infobip/it-infobip"
        sent = 0
        async with asyncio.timeout(120):  # bounded in time as in count
            for _ in range(MAX_REQUESTS):  # a new connection each: the processes share them
                async with httpx.AsyncClient(timeout=30) as client:
                    answer = await client.post(url, content=infobip_report(str(uuid.uuid4())),
                                               headers=basic())
                assert answer.status_code == 200
                sent += 1
                served = {pid for pid, n in _stored_by_process(shared).items() if n > 0}
                if sent >= 12 and len(served) >= PROCESSES:
                    break
        by_process = _stored_by_process(shared)
        served = {pid for pid, n in by_process.items() if n > 0}
        assert len(served) == PROCESSES, f"not every process took requests in {sent}: " \
            f"{by_process}"
        assert server.pid not in served  # the supervisor serves none itself
        assert sum(by_process.values()) == sent
        for _ in range(6):  # each scrape reaches one process or the other: each says all
            async with httpx.AsyncClient(timeout=30) as client:
                assert _stored((await client.get(f"{base_url}/metrics")).text) == sent
    finally:
        server.send_signal(signal.SIGTERM)
        await asyncio.to_thread(server.communicate, timeout=60)
    assert server.returncode in (0, -signal.SIGTERM)
