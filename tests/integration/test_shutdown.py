"""SIGTERM (and SIGHUP: the terminal or ssh session it ran in was closed): `switchboard serve`
stops accepting, finishes what is in flight, flushes, exits 0; a worker stops cleanly too,
also while Kafka is away.

The broker is paused (SIGSTOP) so the requests are provably still waiting for Kafka when the
signal arrives; it resumes once the server has begun to stop. With the broker gone for good,
the server still exits, without the records that were answered 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from switchboard.localkafka import free_port
from tests.integration.processes import (
    REPO,
    ingest_environment,
    own_broker,
    switchboard,
    wait_for_line,
    wait_ready,
)
from tests.integration.webhooks import basic, infobip_report
from tests.kafka_helpers import raw_message_ids

IN_FLIGHT = 6
EXAMPLE_RULES = REPO / "examples" / "rules.toml"


def _serve(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    return switchboard(env, "serve", "--host", "127.0.0.1", "--port", str(port))


@contextlib.asynccontextmanager
async def _stopped_at_the_end(process: subprocess.Popen[str]) -> AsyncIterator[None]:
    try:
        yield
    finally:
        if process.poll() is None:
            process.kill()
            await asyncio.to_thread(process.wait)


async def _exit_output(process: subprocess.Popen[str]) -> str:
    return (await asyncio.to_thread(process.communicate, timeout=60))[0]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
async def test_a_stop_signal_finishes_in_flight_requests_and_stores_them(
        tmp_path: Path, stop: signal.Signals) -> None:
    # SIGHUP killed serve at once (exit 129): nothing in flight answered nor flushed.
    async with own_broker(tmp_path) as broker:
        port = free_port()
        env = ingest_environment(tmp_path, broker.bootstrap_servers) | {
            "SWITCHBOARD_PRODUCE_TIMEOUT_S": "30"}
        server = _serve(env, port)
        async with _stopped_at_the_end(server):
            base_url = f"http://127.0.0.1:{port}"
            await wait_ready(base_url)
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

                    server.send_signal(stop)
                    await asyncio.sleep(1.0)
                    assert server.poll() is None, "ended at once, as by a kill"
                    async with httpx.AsyncClient(timeout=5) as late_client:
                        refused = await asyncio.gather(
                            late_client.post(url, content=infobip_report("late"),
                                             headers=basic()),
                            return_exceptions=True)
                    assert isinstance(refused[0], httpx.ConnectError), \
                        f"still accepting after {stop.name}"
                finally:
                    broker.process.send_signal(signal.SIGCONT)
                answers = await asyncio.gather(*posts)

            assert [a.status_code for a in answers] == [200] * IN_FLIGHT
            output = await _exit_output(server)
            assert server.returncode == 0, output
            assert "ingest stopped" in output
            assert set(ids) <= await raw_message_ids(broker.bootstrap_servers)


async def test_sigterm_with_kafka_gone_exits_without_what_was_answered_503(
        tmp_path: Path) -> None:
    async with own_broker(tmp_path) as broker:
        port = free_port()
        env = ingest_environment(tmp_path, broker.bootstrap_servers) | {
            "SWITCHBOARD_PRODUCE_TIMEOUT_S": "2"}
        server = _serve(env, port)
        async with _stopped_at_the_end(server):
            base_url = f"http://127.0.0.1:{port}"
            await wait_ready(base_url)
            await asyncio.to_thread(broker.stop)
            async with httpx.AsyncClient(timeout=30) as client:
                answer = await client.post(f"{base_url}/webhooks/infobip/it-infobip",
                                           content=infobip_report("unstored"), headers=basic())
            assert answer.status_code == 503

            server.send_signal(signal.SIGTERM)
            output = await _exit_output(server)
            assert server.returncode in (0, -signal.SIGTERM), output
            assert "stopping without the records Kafka has not taken" in output
            assert "ingest stopped" in output


async def test_a_worker_stops_cleanly_while_kafka_is_gone(tmp_path: Path) -> None:
    async with own_broker(tmp_path) as broker:
        probes = f"http://127.0.0.1:{free_port()}"
        env = ingest_environment(tmp_path, broker.bootstrap_servers) | {
            "SWITCHBOARD_RULES_FILE": str(EXAMPLE_RULES),
            "SWITCHBOARD_METRICS_PORT": probes.rsplit(":", 1)[1]}
        worker = switchboard(env, "worker", "keywords")
        async with _stopped_at_the_end(worker):
            # Lines until the worker has joined its group.
            await asyncio.to_thread(wait_for_line, worker, "worker started", 60)
            async with httpx.AsyncClient(base_url=probes, timeout=10) as client:
                assert (await client.get("/readyz")).json() == {"status": "ready"}
                assert (await client.get("/healthz")).status_code == 200
            await asyncio.to_thread(broker.stop)

            worker.send_signal(signal.SIGTERM)
            output = await _exit_output(worker)
            assert worker.returncode == 0, output
            assert "Traceback" not in output
            assert "worker stopped" in output
