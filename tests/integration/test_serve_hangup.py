"""SIGHUP (the terminal or ssh session `serve` ran in was closed) stops `serve` as SIGTERM
does: what is in flight is answered and stored, and it exits 0.

The broker is paused (SIGSTOP) so the requests are provably still waiting for Kafka when the
signal arrives, as in test_shutdown.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import httpx

from switchboard.localkafka import free_port
from tests.integration.processes import (
    ingest_environment,
    killed_if_left,
    own_broker,
    switchboard,
    wait_ready,
)
from tests.integration.webhooks import basic, infobip_report
from tests.kafka_helpers import raw_message_ids

IN_FLIGHT = 3


async def test_sighup_finishes_in_flight_requests_stores_them_and_exits_0(
        tmp_path: Path) -> None:
    async with own_broker(tmp_path) as broker:
        port = free_port()
        env = ingest_environment(tmp_path, broker.bootstrap_servers) | {
            "SWITCHBOARD_PRODUCE_TIMEOUT_S": "30"}
        with killed_if_left(switchboard(env, "serve", "--host", "127.0.0.1", "--port",
                                        str(port))) as server:
            base_url = f"http://127.0.0.1:{port}"
            await wait_ready(base_url)
            url = f"{base_url}/webhooks/infobip/it-infobip"
            assert broker.process is not None
            async with httpx.AsyncClient(timeout=60) as client:
                broker.process.send_signal(signal.SIGSTOP)
                try:
                    ids = [f"hung-up-{uuid.uuid4()}" for _ in range(IN_FLIGHT)]
                    posts = [asyncio.create_task(client.post(url, content=infobip_report(i),
                                                             headers=basic())) for i in ids]
                    await asyncio.sleep(1.0)
                    assert not any(p.done() for p in posts), "answered before Kafka acknowledged"
                    server.send_signal(signal.SIGHUP)  # as a closed terminal would
                    await asyncio.sleep(1.0)
                    assert server.poll() is None, "ended at once, as by a kill"
                finally:
                    broker.process.send_signal(signal.SIGCONT)
                answers = await asyncio.gather(*posts)
            output = (await asyncio.to_thread(server.communicate, timeout=60))[0]

        assert [a.status_code for a in answers] == [200] * IN_FLIGHT
        assert server.returncode == 0, output
        assert "ingest stopped" in output
        assert set(ids) <= await raw_message_ids(broker.bootstrap_servers)
