"""SIGTERM: `switchboard serve` stops accepting, finishes what is in flight, flushes, exits;
a worker stops cleanly too, also while Kafka is away.

The broker is paused (SIGSTOP) so the requests are provably still waiting for Kafka when the
signal arrives; it resumes once the server has begun to stop. With the broker gone for good,
the server still exits, without the records that were answered 503.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import httpx

from switchboard.localkafka import LocalKafka, free_port
from switchboard.settings import Settings
from switchboard.topics import ensure_topics
from tests.integration.test_ingest_behaviour import basic, infobip_report
from tests.integration.test_ingest_outage import _raw_message_ids

ACCOUNTS = """
[accounts.it-infobip]
provider = "infobip"
auth = { scheme = "basic", username = "ib", secrets = ["ib-new-secret"] }

# Omnichat reports do not echo our reference: ingest follows the sent log to correlate them.
[accounts.it-omnichat]
provider = "infobip-omnichat"
auth = { scheme = "basic", username = "oc", secrets = ["oc-secret-1"] }
"""
IN_FLIGHT = 6
EXAMPLE_RULES = Path(__file__).resolve().parents[2] / "examples" / "rules.toml"


def _switchboard(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "switchboard.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _serve(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    return _switchboard(env, "serve", "--host", "127.0.0.1", "--port", str(port))


async def _wait_ready(base_url: str) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(300):  # bounded: up to ~60 s
            try:
                if (await client.get(f"{base_url}/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("ingest did not become ready")


def _environment(tmp_path: Path, bootstrap: str) -> dict[str, str]:
    (tmp_path / "accounts.toml").write_text(ACCOUNTS)
    return {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "SWITCHBOARD_ACCOUNTS_FILE": str(tmp_path / "accounts.toml"),
            "SWITCHBOARD_LOG_FORMAT": "json"}


async def test_sigterm_finishes_in_flight_requests_and_stores_them(tmp_path: Path) -> None:
    broker = LocalKafka(tmp_path / "kafka", cache_dir=Settings().cache_dir, port=free_port(),
                        controller_port=free_port())
    await asyncio.to_thread(broker.start)
    port = free_port()
    env = _environment(tmp_path, broker.bootstrap_servers) | {
        "SWITCHBOARD_PRODUCE_TIMEOUT_S": "30"}
    server = None
    try:
        await broker.wait_ready()
        await ensure_topics(broker.bootstrap_servers, partitions=1, replication_factor=1)
        server = _serve(env, port)
        base_url = f"http://127.0.0.1:{port}"
        await _wait_ready(base_url)
        url = f"{base_url}/webhooks/infobip/it-infobip"

        assert broker.process is not None
        async with httpx.AsyncClient(timeout=60) as client:
            broker.process.send_signal(signal.SIGSTOP)
            try:
                ids = [f"in-flight-{uuid.uuid4()}" for _ in range(IN_FLIGHT)]
                posts = [asyncio.create_task(client.post(url, content=infobip_report(i),
                                                         headers=basic())) for i in ids]
                await asyncio.sleep(1.0)
                assert not any(p.done() for p in posts), "answered before Kafka acknowledged"

                server.send_signal(signal.SIGTERM)
                await asyncio.sleep(1.0)
                async with httpx.AsyncClient(timeout=5) as late_client:
                    refused = await asyncio.gather(
                        late_client.post(url, content=infobip_report("late"), headers=basic()),
                        return_exceptions=True)
                assert isinstance(refused[0], httpx.ConnectError), "still accepting after SIGTERM"
            finally:
                broker.process.send_signal(signal.SIGCONT)
            answers = await asyncio.gather(*posts)

        assert [a.status_code for a in answers] == [200] * IN_FLIGHT
        output = (await asyncio.to_thread(server.communicate, timeout=60))[0].decode()
        assert server.returncode in (0, -signal.SIGTERM), output
        assert "ingest stopped" in output
        assert set(ids) <= await _raw_message_ids(broker.bootstrap_servers)
    finally:
        if server is not None and server.poll() is None:
            server.kill()
            server.wait()
        await asyncio.to_thread(broker.stop)


async def test_sigterm_with_kafka_gone_exits_without_what_was_answered_503(
        tmp_path: Path) -> None:
    broker = LocalKafka(tmp_path / "kafka", cache_dir=Settings().cache_dir, port=free_port(),
                        controller_port=free_port())
    await asyncio.to_thread(broker.start)
    port = free_port()
    env = _environment(tmp_path, broker.bootstrap_servers) | {
        "SWITCHBOARD_PRODUCE_TIMEOUT_S": "2"}
    server = None
    try:
        await broker.wait_ready()
        await ensure_topics(broker.bootstrap_servers, partitions=1, replication_factor=1)
        server = _serve(env, port)
        base_url = f"http://127.0.0.1:{port}"
        await _wait_ready(base_url)
        await asyncio.to_thread(broker.stop)
        async with httpx.AsyncClient(timeout=30) as client:
            answer = await client.post(f"{base_url}/webhooks/infobip/it-infobip",
                                       content=infobip_report("unstored"), headers=basic())
        assert answer.status_code == 503

        server.send_signal(signal.SIGTERM)
        output = (await asyncio.to_thread(server.communicate, timeout=60))[0].decode()
        assert server.returncode in (0, -signal.SIGTERM), output
        assert "stopping without the records Kafka has not taken" in output
        assert "ingest stopped" in output
    finally:
        if server is not None and server.poll() is None:
            server.kill()
            server.wait()
        await asyncio.to_thread(broker.stop)


async def test_a_worker_stops_cleanly_while_kafka_is_gone(tmp_path: Path) -> None:
    broker = LocalKafka(tmp_path / "kafka", cache_dir=Settings().cache_dir, port=free_port(),
                        controller_port=free_port())
    await asyncio.to_thread(broker.start)
    probes = f"http://127.0.0.1:{free_port()}"
    env = _environment(tmp_path, broker.bootstrap_servers) | {
        "SWITCHBOARD_RULES_FILE": str(EXAMPLE_RULES),
        "SWITCHBOARD_METRICS_PORT": probes.rsplit(":", 1)[1]}
    worker = None
    try:
        await broker.wait_ready()
        await ensure_topics(broker.bootstrap_servers, partitions=1, replication_factor=1)
        worker = _switchboard(env, "worker", "keywords")
        assert worker.stdout is not None
        started = False
        for _ in range(600):  # bounded: lines until the worker has joined its group
            line = await asyncio.to_thread(worker.stdout.readline)
            if not line or b"worker started" in line:
                started = bool(line)
                break
        assert started, "the worker did not start"
        async with httpx.AsyncClient(base_url=probes, timeout=10) as client:
            assert (await client.get("/readyz")).json() == {"status": "ok"}
            assert (await client.get("/healthz")).status_code == 200
        await asyncio.to_thread(broker.stop)

        worker.send_signal(signal.SIGTERM)
        output = (await asyncio.to_thread(worker.communicate, timeout=60))[0].decode()
        assert worker.returncode == 0, output
        assert "Traceback" not in output
        assert "worker stopped" in output
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait()
        await asyncio.to_thread(broker.stop)
