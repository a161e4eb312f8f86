"""No `<name>_created` series in a scrape: beside every counter and histogram series it doubled
the series Prometheus stores (each account's, declared at zero), which it needs none of to see a
counter reset. Each scraped in a process of its own, as ingest's and a worker's are: what turns
the series off must be in what that process imports, not in what a test imported before."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from switchboard.serving import MULTIPROCESS_DIR_ENV

REPO = Path(__file__).resolve().parents[2]

INGEST = """
import asyncio, sys
from pathlib import Path
import httpx
from ingest.app import create_app
from switchboard.accounts import load_accounts
from switchboard.settings import Settings

assert "consumers.worker_metrics" not in sys.modules  # ingest's own imports, no worker's

async def scrape() -> str:
    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:1"),
                     load_accounts(Path("examples/accounts.toml")))
    from ingest import metrics
    metrics.count_request("infobip", "demo-infobip", "stored")
    metrics.PUBLISH_SECONDS.observe(0.01)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        return (await client.get("/metrics")).text

print(asyncio.run(scrape()))
"""

WORKER = """
import sys
from pathlib import Path
import httpx
from consumers import sender_metrics, worker_metrics
from consumers.health import WorkerHealth, serve_worker_http
import consumers.workers  # all a worker imports: the bots' metrics too
from switchboard.accounts import load_accounts
from switchboard.localkafka import free_port

assert "ingest.metrics" not in sys.modules  # a worker's own imports, no ingest's

worker_metrics.initialize("sender")  # as WorkerRuntime does at its start
sender_metrics.initialize(load_accounts(Path("examples/accounts.toml")))
worker_metrics.HANDLER_SECONDS.labels("sender").observe(0.01)
port = free_port()
server = serve_worker_http(WorkerHealth(), "127.0.0.1", port)
try:
    print(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text)
finally:
    server.shutdown()
    server.server_close()
"""


def _scrape_in_child(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("SWITCHBOARD_", "PROMETHEUS_", "KAFKA_BOOTSTRAP_"))}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO,
                            env=clean | {"PYTHONPATH": os.pathsep.join(sys.path)} | env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _created(scrape: str) -> list[str]:
    return [line for line in scrape.splitlines() if "_created" in line]


def test_ingest_s_metrics_have_no_created_series() -> None:
    scrape = _scrape_in_child(INGEST)
    assert 'switchboard_ingest_requests_total{account="demo-infobip",outcome="stored"' in scrape
    assert "switchboard_ingest_publish_seconds_count 1.0" in scrape
    assert _created(scrape) == []


def test_ingest_s_metrics_of_several_processes_have_none_either(tmp_path: Path) -> None:
    # `serve --workers N`: summed from the processes' files, which never held them.
    scrape = _scrape_in_child(INGEST, **{MULTIPROCESS_DIR_ENV: str(tmp_path)})
    assert 'switchboard_ingest_requests_total{account="demo-infobip",outcome="stored"' in scrape
    assert _created(scrape) == []


def test_a_worker_s_metrics_have_no_created_series() -> None:
    scrape = _scrape_in_child(WORKER)
    assert 'switchboard_worker_records_total{outcome="ok",worker="sender"} 0.0' in scrape
    assert 'switchboard_sender_sends_total{' in scrape
    assert 'switchboard_worker_handler_seconds_count{worker="sender"} 1.0' in scrape
    assert _created(scrape) == []
