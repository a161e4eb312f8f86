"""Ingest throughput and latency, with a bare Starlette endpoint as the ceiling, in one run.

Both servers run as the same number of uvicorn processes on 127.0.0.1, fed by the same load
generator with the same Infobip delivery reports (each one distinct, so duplicate suppression
never helps).
The full path authenticates, normalizes and waits for Kafka acks=all on a real broker.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.common import HOST, kafka, wait_http
from bench.loadgen import LoadResult, build_request, closed_loop, open_loop
from switchboard.localkafka import free_port, stop_process
from switchboard.topics import RAW, partitions_of

SATURATION_S = float(os.environ.get("BENCH_SECONDS", "6"))
# The target is for one process; more show how `serve --workers N` scales on this machine.
INGEST_PROCESSES = int(os.environ.get("BENCH_INGEST_WORKERS", "1"))
CONNECTIONS = 32
FIXED_RATE = 1000.0
FIXED_S = 5.0
MAX_REQUESTS = 60_000
ACCOUNTS = """
[accounts.bench-infobip]
provider = "infobip"
auth = { scheme = "basic", username = "bench", secrets = ["bench-password-123"] }
"""


BENCH_USERNAME, BENCH_PASSWORD = "bench", "bench-password-123"
WEBHOOK_PATH = "/webhooks/infobip/bench-infobip"


def webhook_headers() -> dict[str, str]:
    """What the load generator sends with every delivery report."""
    token = base64.b64encode(f"{BENCH_USERNAME}:{BENCH_PASSWORD}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "application/json"}


def delivery_report(n: int) -> bytes:
    """The n-th benchmark delivery report: its message id, reference and contact are its own,
    so duplicate suppression never helps and each one is a new conversation key."""
    return (
        '{"results":[{"event":"DELIVERY","channel":"SMS","sender":"InfoSMS",'
        f'"destination":"4179{n % 10_000_000:07d}","sentAt":"2026-02-06T14:18:29.797+0000",'
        '"doneAt":"2026-02-06T14:18:31.797+0000","bulkId":"bench",'
        f'"messageId":"bench-{os.getpid()}-{n}","messageCount":1,"callbackData":"ref-{n}",'
        '"status":{"groupId":3,"groupName":"DELIVERED","id":5,'
        '"name":"DELIVERED_TO_HANDSET","description":"Message delivered to handset"},'
        '"error":{"groupId":0,"groupName":"OK","id":0,"name":"NO_ERROR",'
        '"description":"No Error","permanent":false}}]}'
    ).encode()


def delivery_reports(port: int) -> Iterator[bytes]:
    headers = webhook_headers()
    for n in itertools.count():
        yield build_request(HOST, port, WEBHOOK_PATH, delivery_report(n), headers)


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def ceiling_command(port: int, processes: int) -> list[str]:
    """The ceiling as ingest is served: uvicorn's default loop and HTTP parser, no access
    log, and as many processes (a ratio against fewer would flatter ingest)."""
    return [sys.executable, "-m", "uvicorn", "bench.ceiling:app", "--host", HOST,
            "--port", str(port), "--workers", str(processes), "--no-access-log",
            "--log-level", "warning"]


async def _wait_port(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection(HOST, port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.2)
    raise RuntimeError(f"nothing listens on port {port}")


async def _measure(port: int) -> tuple[LoadResult, LoadResult, LoadResult]:
    requests = delivery_reports(port)
    warmup = await closed_loop(HOST, port, requests, connections=8, duration_s=1.0,
                               max_requests=5000)
    saturation = await closed_loop(HOST, port, requests, connections=CONNECTIONS,
                                   duration_s=SATURATION_S, max_requests=MAX_REQUESTS)
    fixed = await open_loop(HOST, port, requests, rate_per_s=FIXED_RATE, duration_s=FIXED_S)
    return warmup, saturation, fixed


async def _raw_count(bootstrap: str) -> int:
    partitions = [TopicPartition(RAW.name, p) for p in await partitions_of(bootstrap, RAW.name)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
        return sum(ends.values())
    finally:
        await consumer.stop()


def _row(name: str, saturation: LoadResult, fixed: LoadResult) -> str:
    return (f"{name:10} {saturation.rate():>10.0f} {saturation.percentile(0.5):>8.2f} "
            f"{saturation.percentile(0.99):>8.2f} {fixed.rate():>9.0f} "
            f"{fixed.percentile(0.5):>8.2f} {fixed.percentile(0.99):>8.2f}   "
            f"{_merged(saturation, fixed)}")


def throughput_ratio(full: LoadResult, ceiling: LoadResult) -> float:
    """full/ceiling at saturation; NaN when the ceiling answered nothing 2xx, so the run
    still prints its figures and the Kafka check."""
    return full.rate() / ceiling.rate() if ceiling.rate() else float("nan")


def _merged(*results: LoadResult) -> dict[int, int]:
    merged: dict[int, int] = {}
    for result in results:
        for status, count in result.statuses.items():
            merged[status] = merged.get(status, 0) + count
    return dict(sorted(merged.items()))


async def run(bootstrap: str, workdir: Path) -> int:
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "SWITCHBOARD_LOG_LEVEL": "WARNING"}
    accounts = workdir / "accounts.toml"
    accounts.write_text(ACCOUNTS)
    env["SWITCHBOARD_ACCOUNTS_FILE"] = str(accounts)

    port = free_port()
    ceiling = _start(ceiling_command(port, INGEST_PROCESSES), env)
    try:
        await _wait_port(port)
        _, ceiling_saturation, ceiling_fixed = await _measure(port)
    finally:
        stop_process(ceiling, 30)

    port = free_port()
    env["SWITCHBOARD_HTTP_PORT"] = str(port)
    before = await _raw_count(bootstrap)
    ingest = _start([sys.executable, "-m", "switchboard.cli", "serve", "--host", HOST,
                     "--workers", str(INGEST_PROCESSES)], env)
    try:
        await wait_http(f"http://{HOST}:{port}/readyz")
        warmup, full_saturation, full_fixed = await _measure(port)
    finally:
        stop_process(ingest, 60)
    stored = await _raw_count(bootstrap) - before

    print(f"{'server':10} {'sat req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'@1k req/s':>9} "
          f"{'p50 ms':>8} {'p99 ms':>8}   statuses")
    print(_row("ceiling" if INGEST_PROCESSES == 1 else f"ceiling x{INGEST_PROCESSES}",
               ceiling_saturation, ceiling_fixed))
    print(_row("ingest" if INGEST_PROCESSES == 1 else f"ingest x{INGEST_PROCESSES}",
               full_saturation, full_fixed))
    ratio = throughput_ratio(full_saturation, ceiling_saturation)
    target = "(target >= 0.5)" if INGEST_PROCESSES == 1 else \
        f"with {INGEST_PROCESSES} ingest processes (the target is for one)"
    print(f"\nfull/ceiling throughput ratio: {ratio:.2f} {target}")
    print(f"p99 at {FIXED_RATE:.0f} req/s offered: {full_fixed.percentile(0.99):.1f} ms "
          f"(target <= 20 ms); {full_fixed.ok}/{full_fixed.count} answered 2xx, "
          f"{full_fixed.rate():.0f} req/s achieved")
    answered = warmup.ok + full_saturation.ok + full_fixed.ok
    verdict = "all stored" if stored == answered else "MISMATCH"
    print(f"Kafka check: {answered} requests answered 2xx, {stored} raw records written "
          f"({verdict})")
    return 0 if stored == answered else 1


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as tmp, \
            kafka(Path(tmp)) as bootstrap:
        return asyncio.run(run(bootstrap, Path(tmp)))


if __name__ == "__main__":
    raise SystemExit(main())
