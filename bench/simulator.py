"""The provider simulator's speed, per provider: sends it accepts and webhooks it delivers.

`switchboard simulate` runs as users run it, calling back a bare receiver that answers 200 (no
ingest, no Kafka: this measures the simulator alone). Per provider, the load generator makes
BENCH_SENDS of the fixture send (tests/fixtures/<provider>/simulator/send.json) on CONNECTIONS
keep-alive connections, then waits until the simulator holds no webhook. Messages/s counts a
message once all its webhooks were delivered: the sends over the time from the first send to
the last webhook. The baseline is the same sends answered by the bare receiver, in the same run;
the ratio is messages/s against its requests/s. Infobip's reports go out in buckets of up to 100
(reqs/s counts the requests, hooks/s the reports).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from itertools import repeat
from pathlib import Path
from typing import Any

import httpx
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.common import HOST, child_env, wait_http
from bench.loadgen import LoadResult, build_request, closed_loop
from switchboard.localkafka import free_port, stop_process
from switchboard.providers import PROVIDERS
from tests.accounts_toml import accounts_toml as write_accounts
from tests.outbound_fixtures import load_simulator_accounts, load_simulator_sends

SENDS = int(os.environ.get("BENCH_SENDS", "3000"))  # per provider
SECONDS = 30.0  # at most, for a provider's sends
CONNECTIONS = 16
DRAIN_S = 120.0  # at most, for the simulator to deliver the webhooks of the sends, after them
# BENCH_PROVIDERS=bird,webex: only these; BENCH_SIM_PROFILE=path: the simulator under cProfile
# (written as it stops; far slower, so for where its time goes, not its rate).
PROVIDERS_RUN = [name for name in os.environ.get("BENCH_PROVIDERS", "").split(",") if name]


# --- the bare receiver: webhooks and (for the baseline) sends answered 200, counted -----------

_received = {"requests": 0}


async def _take(request: Request) -> Response:
    await request.body()
    _received["requests"] += 1
    return Response(b'{"ok":true}', media_type="application/json")


async def _count(request: Request) -> Response:
    return Response(orjson.dumps(_received), media_type="application/json")


receiver = Starlette(routes=[Route("/_count", _count, methods=["GET"]),
                             Route("/{path:path}", _take, methods=["POST"])])


# --- the run --------------------------------------------------------------------------------


def accounts_toml() -> str:
    """The simulator fixtures' accounts of every provider, as an accounts file."""
    return write_accounts({name: account for provider in PROVIDERS
                           for name, account in load_simulator_accounts(provider)["accounts"]
                           .items()})


async def send_request(client: httpx.AsyncClient, port: int, provider: str,
                       receiver_url: str) -> bytes:
    """The fixture send of `provider` as raw HTTP for port (a token fetched from the
    simulator when the provider needs one); a status URL in it points at the receiver."""
    [case] = [case for case in load_simulator_sends(provider) if case.name == "send"]
    spec = case.spec
    headers: dict[str, str] = {**spec["request"]["headers"], "content-type": "application/json"}
    if "token" in spec:
        answer = await client.post(spec["token"]["path"], json=spec["token"]["json"])
        answer.raise_for_status()
        headers = {key: value.replace("{token}", answer.json()["token"])
                   for key, value in headers.items()}
    body = orjson.dumps(spec["request"]["json"]).replace(b"http://ingest.test",
                                                         receiver_url.encode())
    return build_request(HOST, port, spec["request"]["path"], body, headers)


async def _load(port: int, request: bytes) -> LoadResult:
    requests: Iterator[bytes] = repeat(request)
    return await closed_loop(HOST, port, requests, connections=CONNECTIONS,
                             duration_s=SECONDS, max_requests=SENDS)


async def _drained(client: httpx.AsyncClient) -> dict[str, Any]:
    """The simulator's webhook counters once it holds none (or DRAIN_S has passed)."""
    deadline = time.monotonic() + DRAIN_S
    while True:
        stats: dict[str, Any] = (await client.get("/_sim/webhooks")).json()
        if stats["pending"] == 0 or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.05)


async def _requests(client: httpx.AsyncClient) -> int:
    count: int = (await client.get("/_count")).json()["requests"]
    return count


async def measure(sim_port: int, receiver_port: int) -> int:
    receiver_url = f"http://{HOST}:{receiver_port}"
    print(f"{'provider':17} {'bare req/s':>10} {'sends/s':>8} {'msgs/s':>7} {'hooks/s':>8} "
          f"{'reqs/s':>7} {'ratio':>6}   sends, webhooks sent/failed")
    failures = 0
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{sim_port}", timeout=30) as sim, \
            httpx.AsyncClient(base_url=receiver_url, timeout=30) as bare:
        for provider in PROVIDERS_RUN or PROVIDERS:
            request = await send_request(sim, sim_port, provider, receiver_url)
            path = request.split(b" ", 2)[1]
            baseline = await _load(receiver_port, request.replace(
                f"{HOST}:{sim_port}".encode(), f"{HOST}:{receiver_port}".encode()))
            before = (await _drained(sim), await _requests(bare))
            started = time.perf_counter()
            sends = await _load(sim_port, request)
            after = await _drained(sim)
            elapsed = time.perf_counter() - started
            requests = await _requests(bare) - before[1]
            sent, failed = (after[key] - before[0][key] for key in ("sent", "failed"))
            messages = sends.ok / elapsed
            ratio = messages / baseline.rate() if baseline.rate() else float("nan")
            print(f"{provider:17} {baseline.rate():>10.0f} {sends.rate():>8.0f} "
                  f"{messages:>7.0f} {sent / elapsed:>8.0f} {requests / elapsed:>7.0f} "
                  f"{ratio:>6.2f}   {sends.ok}/{sends.count} to {path.decode()}, "
                  f"{sent}/{failed}" + ("" if after["pending"] == 0 else
                                       f", {after['pending']} STILL PENDING"))
            failures += (sends.ok != sends.count or failed > 0 or after["pending"] > 0
                         or sent == 0)
    return 1 if failures else 0


async def run(workdir: Path) -> int:
    accounts = workdir / "accounts.toml"
    accounts.write_text(accounts_toml())
    receiver_port, sim_port = free_port(), free_port()
    env = child_env({"SWITCHBOARD_ACCOUNTS_FILE": str(accounts),
                     "SWITCHBOARD_LOG_LEVEL": "WARNING",
                     "SWITCHBOARD_SIMULATOR_WEBHOOK_QUEUE": str(SENDS)})
    bare = _start([sys.executable, "-m", "uvicorn", "bench.simulator:receiver", "--host", HOST,
                   "--port", str(receiver_port), "--no-access-log", "--log-level", "warning"],
                  env)
    try:
        profile = os.environ.get("BENCH_SIM_PROFILE")
        profiled = ["-m", "cProfile", "-o", profile] if profile else []
        sim = _start([sys.executable, *profiled, "-m", "switchboard.cli", "simulate", "--port",
                      str(sim_port), "--ingest-url", f"http://{HOST}:{receiver_port}"], env)
        try:
            await wait_http(f"http://{HOST}:{sim_port}/_sim/health")
            await wait_http(f"http://{HOST}:{receiver_port}/_count")
            return await measure(sim_port, receiver_port)
        finally:
            stop_process(sim, 30)
    finally:
        stop_process(bare, 30)


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # Their output to our stderr: a child that fails to start says why.
    return subprocess.Popen(args, env=env, stdout=sys.stderr, stderr=sys.stderr)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as tmp:
        return asyncio.run(run(Path(tmp)))


if __name__ == "__main__":
    raise SystemExit(main())
