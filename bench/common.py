"""Shared bench plumbing: a broker (local unless KAFKA_BOOTSTRAP_SERVERS), child processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx

from switchboard.localkafka import LocalKafka, free_port, stop_process
from switchboard.settings import Settings
from switchboard.topics import ensure_topics

HOST = "127.0.0.1"

# One Infobip account: webhooks to ingest with Basic auth, sends to the simulator.
def accounts_toml(sim_port: int) -> str:
    return f"""
[accounts.bench-infobip]
provider = "infobip"
auth = {{ scheme = "basic", username = "bench", secrets = ["bench-password-123"] }}

[accounts.bench-infobip.outbound]
base_url = "http://{HOST}:{sim_port}/infobip"
api_key = "bench-api-key-123"
sender = "InfoSMS"
rate_per_s = 100000
burst = 1000
"""


@contextlib.contextmanager
def kafka(workdir: Path) -> Iterator[str]:
    settings = Settings()
    if settings.kafka_name_prefix:
        # The benchmarks' own clients use the plain names; half-prefixed runs would miscount.
        raise SystemExit("bench: unset SWITCHBOARD_KAFKA_NAME_PREFIX (the benchmarks use the "
                         "plain topic names)")
    if settings.kafka_bootstrap_servers:
        yield settings.kafka_bootstrap_servers
        return
    broker = LocalKafka(workdir / "kafka", cache_dir=settings.cache_dir, port=free_port(),
                        controller_port=free_port())
    broker.start()
    try:
        asyncio.run(broker.wait_ready())
        asyncio.run(ensure_topics(broker.bootstrap_servers, partitions=6, replication_factor=1))
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@contextlib.asynccontextmanager
async def child(args: list[str], env: dict[str, str], ready_url: str | None = None
                ) -> AsyncIterator[subprocess.Popen[bytes]]:
    """A `switchboard ...` subprocess, stopped with SIGTERM (graceful) at the end."""
    process = subprocess.Popen([sys.executable, "-m", "switchboard.cli", *args],  # noqa: ASYNC220
                               env=child_env(env), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        if ready_url:
            await wait_http(ready_url)
        yield process
    finally:
        stop_process(process, 60)


def child_env(env: dict[str, str]) -> dict[str, str]:
    """This environment for a child, but on 127.0.0.1 whatever SWITCHBOARD_HTTP_HOST says
    (`0.0.0.0` in a container would open the simulator and workers to the network), and
    without SWITCHBOARD_METRICS_PORT (two workers cannot both bind it: one would exit)."""
    inherited = {name: value for name, value in os.environ.items()
                 if name != "SWITCHBOARD_METRICS_PORT"}
    return {**inherited, "SWITCHBOARD_HTTP_HOST": HOST, **env}


async def wait_http(url: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")
