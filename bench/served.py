"""Ingest served by uvicorn as `serve` serves it, but with the CPU-only stand-in producer (no
Kafka), against the bare Starlette ceiling: the CPU a request costs each server, read from
/proc (Linux), so the figure is what the ratio would be if Kafka cost ingest nothing.

Part of `python -m bench profile`: the in-process stages show where a request's time goes, this
how much of it a server adds (uvicorn, the sockets, colder caches between requests). A second
run of each server splits its CPU with a thread-CPU timer around the app: the app's own part, its
send (uvicorn writing the answer), and what is left (uvicorn's parser and protocol, the event loop,
the reads); and times the same app in process, in that server process, after its rounds.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, NamedTuple

import httpx
from starlette.applications import Starlette

from bench.common import HOST
from bench.ingest import _start, _wait_port, ceiling_command, delivery_report, delivery_reports
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


def ingest_command(port: int, factory: str = "served_app") -> list[str]:
    """As `serve` configures uvicorn: ingest's HTTP protocol, proxy headers, no access log."""
    return [sys.executable, "-m", "uvicorn", f"bench.served:{factory}", "--factory",
            "--host", HOST, "--port", str(port), "--http", INGEST_HTTP, "--proxy-headers",
            "--no-access-log", "--log-level", "critical"]


def timed_ceiling_command(port: int) -> list[str]:
    """The ceiling as ceiling_command serves it (uvicorn's own protocol), timed."""
    return [sys.executable, "-m", "uvicorn", "bench.served:timed_ceiling_app", "--factory",
            "--host", HOST, "--port", str(port), "--no-access-log", "--log-level", "critical"]


ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]
Message = MutableMapping[str, Any]
TIMES_PATH = "/bench/times"
IN_PROCESS_PATH = "/bench/in-process"
IN_PROCESS_REQUESTS = 2000


class TimedApp:
    """`app`, with the thread CPU of its calls and of their sends counted (GET TIMES_PATH answers
    the sums so far), and GET IN_PROCESS_PATH timing it called in a loop, as bench.profile does.

    A call's thread CPU is its own: nothing the benchmark's requests await suspends (the body is
    whole when the app starts, the producer a stand-in), so no other request runs inside it. The
    timer's six clock reads cost a request 2-3 µs: only a timed server's split is reported.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.calls = self.app_ns = self.send_ns = 0
        self._next_report = 10**9  # in-process reports: new ones, never a served one's

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] in (TIMES_PATH, IN_PROCESS_PATH):
            body = (f"{self.calls} {self.app_ns} {self.send_ns}" if scope["path"] == TIMES_PATH
                    else f"{await self._in_process_us():.1f}").encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"%d" % len(body))]})
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def timed_send(message: Message) -> None:
            started = time.thread_time_ns()
            await send(message)
            self.send_ns += time.thread_time_ns() - started

        started = time.thread_time_ns()
        await self.app(scope, receive, timed_send)
        self.app_ns += time.thread_time_ns() - started
        self.calls += 1

    async def _in_process_us(self) -> float:
        from bench.profile import _receiver, _scope

        async def send(message: Message) -> None:
            pass

        first, self._next_report = self._next_report, self._next_report + IN_PROCESS_REQUESTS
        bodies = [delivery_report(n) for n in range(first, self._next_report)]
        scopes = [_scope(body) for body in bodies]
        started = time.thread_time_ns()
        for scope, body in zip(scopes, bodies, strict=True):
            await self.app(scope, _receiver(body), send)
        return (time.thread_time_ns() - started) / IN_PROCESS_REQUESTS / 1000


def timed_ingest_app() -> TimedApp:
    return TimedApp(served_app())


def timed_ceiling_app() -> TimedApp:
    from bench.ceiling import app
    return TimedApp(app)


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@asynccontextmanager
async def _warm_server(command: list[str], port: int, env: dict[str, str]
                       ) -> AsyncIterator[tuple[int, Iterator[bytes]]]:
    """The server `command` starts, listening on `port` and warmed up by a second of requests
    (its imports, first calls and caches are no round's): its pid and the requests to send it.
    Stopped on leaving."""
    process = _start(command, env)
    try:
        await _wait_port(port)
        requests = delivery_reports(port)
        await closed_loop(HOST, port, requests, connections=8, duration_s=1.0, max_requests=5000)
        yield process.pid, requests
    finally:
        stop_process(process, 30)


async def _cpu_us_per_request(command: list[str], port: int, env: dict[str, str]
                              ) -> tuple[float, dict[int, int]]:
    """The server's CPU per 2xx answer at saturation: the fastest of ROUNDS rounds."""
    async with _warm_server(command, port, env) as (pid, requests):
        costs: list[float] = []
        statuses: dict[int, int] = {}
        for _ in range(ROUNDS):
            before = _cpu_s(pid)
            result = await closed_loop(HOST, port, requests, connections=CONNECTIONS,
                                       duration_s=ROUND_S, max_requests=60_000)
            costs.append((_cpu_s(pid) - before) / max(result.ok, 1) * 1e6)
            statuses = result.statuses
        return min(costs), statuses


class Split(NamedTuple):
    """A timed server's CPU per request, µs: all of it, in the app, in the app's send, and the
    same app in process (in the server's process, after its rounds)."""

    whole: float
    app: float
    send: float
    in_process: float


async def _times(client: httpx.AsyncClient, port: int) -> tuple[int, int, int]:
    calls, app_ns, send_ns = (await client.get(f"http://{HOST}:{port}{TIMES_PATH}")).text.split()
    return int(calls), int(app_ns), int(send_ns)


async def _split(command: list[str], port: int, env: dict[str, str]) -> Split:
    """The fastest of ROUNDS rounds, split."""
    async with (_warm_server(command, port, env) as (pid, requests),
                httpx.AsyncClient(timeout=60) as client):
        splits: list[Split] = []
        for _ in range(ROUNDS):
            calls, app_ns, send_ns = await _times(client, port)
            cpu_s = _cpu_s(pid)
            await closed_loop(HOST, port, requests, connections=CONNECTIONS,
                              duration_s=ROUND_S, max_requests=60_000)
            cpu_s = _cpu_s(pid) - cpu_s
            now_calls, now_app_ns, now_send_ns = await _times(client, port)
            count = max(now_calls - calls, 1)
            splits.append(Split(cpu_s / count * 1e6, (now_app_ns - app_ns) / count / 1000,
                                (now_send_ns - send_ns) / count / 1000, 0.0))
        in_process = min([float((await client.get(f"http://{HOST}:{port}{IN_PROCESS_PATH}"
                                                  )).text) for _ in range(ROUNDS)])
        return min(splits)._replace(in_process=in_process)


def _split_table(ceiling: Split, ingest: Split) -> str:
    rows: list[tuple[str, Callable[[Split], float]]] = [
            ("uvicorn, its protocol, the loop, the reads", lambda s: s.whole - s.app),
            ("the app, less its send", lambda s: s.app - s.send),
            ("the app's send (uvicorn writing the answer)", lambda s: s.send),
            ("all, timed", lambda s: s.whole),
            ("the app in process, same process", lambda s: s.in_process),
            ("the app less its send, served / in process",
             lambda s: (s.app - s.send) / s.in_process)]
    lines = [f"{'served, split (µs per request)':44} {'ceiling':>8} {'ingest':>8}"]
    lines += [f"{name:44} {part(ceiling):>8.1f} {part(ingest):>8.1f}" for name, part in rows]
    return "\n".join(lines)


async def run(accounts_file: Path) -> int:
    env = {**os.environ, ACCOUNTS_ENV: str(accounts_file), "SWITCHBOARD_LOG_LEVEL": "ERROR"}
    port = free_port()
    ceiling, _ = await _cpu_us_per_request(ceiling_command(port, 1), port, env)
    port = free_port()
    ingest, statuses = await _cpu_us_per_request(ingest_command(port), port, env)
    print(f"\nserved, {CONNECTIONS} connections, CPU per request: ceiling {ceiling:.0f} µs, "
          f"ingest with the stand-in producer {ingest:.0f} µs -> ratio {ceiling / ingest:.2f} "
          f"if Kafka cost nothing; ingest's statuses {dict(sorted(statuses.items()))}")
    port = free_port()
    ceiling_split = await _split(timed_ceiling_command(port), port, env)
    port = free_port()
    ingest_split = await _split(ingest_command(port, "timed_ingest_app"), port, env)
    print(_split_table(ceiling_split, ingest_split))
    return 0 if set(statuses) == {200} else 1


def main(accounts_file: Path) -> int:
    return asyncio.run(run(accounts_file))
