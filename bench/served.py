"""Ingest served by uvicorn as `serve` serves it, but with the CPU-only stand-in producer (no
Kafka), against the bare Starlette ceiling: the CPU a request costs each server, read from
/proc (Linux), so the figure is what the ratio would be if Kafka cost ingest nothing.

Part of `python -m bench profile`: the in-process stages show where a request's time goes, this
how much of it a server adds (uvicorn, the sockets, colder caches between requests).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from starlette.applications import Starlette

from bench.common import HOST
from bench.ingest import _start, _wait_port, ceiling_command, delivery_reports
from bench.loadgen import closed_loop
from switchboard.localkafka import free_port, stop_process
from switchboard.serving import INGEST_HTTP

ACCOUNTS_ENV = "BENCH_PROFILE_ACCOUNTS"
ROUNDS = 2
ROUND_S = 3.0
CONNECTIONS = 32


def served_app() -> Starlette:
    """uvicorn's factory: the ingest app as `serve` builds it, its producer the stand-in."""
    from bench.profile import CpuOnlyProducer
    from ingest.app import create_app
    from switchboard import heap
    from switchboard.settings import Settings

    app = create_app(Settings(kafka_bootstrap_servers="127.0.0.1:9", create_topics=False,
                              accounts_file=Path(os.environ[ACCOUNTS_ENV])))
    app.state.handler.producer = CpuOnlyProducer()
    heap.settle()
    return app


def ingest_command(port: int) -> list[str]:
    """As `serve` configures uvicorn: ingest's HTTP protocol, proxy headers, no access log."""
    return [sys.executable, "-m", "uvicorn", "bench.served:served_app", "--factory",
            "--host", HOST, "--port", str(port), "--http", INGEST_HTTP, "--proxy-headers",
            "--no-access-log", "--log-level", "critical"]


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _cpu_us_per_request(command: list[str], port: int, env: dict[str, str]
                              ) -> tuple[float, dict[int, int]]:
    """The server's CPU per 2xx answer at saturation: the fastest of ROUNDS rounds."""
    process = _start(command, env)
    try:
        await _wait_port(port)
        requests = delivery_reports(port)
        await closed_loop(HOST, port, requests, connections=8, duration_s=1.0, max_requests=5000)
        costs: list[float] = []
        statuses: dict[int, int] = {}
        for _ in range(ROUNDS):
            before = _cpu_s(process.pid)
            result = await closed_loop(HOST, port, requests, connections=CONNECTIONS,
                                       duration_s=ROUND_S, max_requests=60_000)
            costs.append((_cpu_s(process.pid) - before) / max(result.ok, 1) * 1e6)
            statuses = result.statuses
        return min(costs), statuses
    finally:
        stop_process(process, 30)


async def run(accounts_file: Path) -> int:
    env = {**os.environ, ACCOUNTS_ENV: str(accounts_file), "SWITCHBOARD_LOG_LEVEL": "ERROR"}
    port = free_port()
    ceiling, _ = await _cpu_us_per_request(ceiling_command(port, 1), port, env)
    port = free_port()
    ingest, statuses = await _cpu_us_per_request(ingest_command(port), port, env)
    print(f"\nserved, {CONNECTIONS} connections, CPU per request: ceiling {ceiling:.0f} µs, "
          f"ingest with the stand-in producer {ingest:.0f} µs -> ratio {ceiling / ingest:.2f} "
          f"if Kafka cost nothing; ingest's statuses {dict(sorted(statuses.items()))}")
    return 0 if set(statuses) == {200} else 1


def main(accounts_file: Path) -> int:
    return asyncio.run(run(accounts_file))
