"""A small HTTP/1.1 keep-alive load generator on raw asyncio streams.

httpx costs more CPU per request than the servers under test; this sends precomposed
requests and parses only the status line and Content-Length, so the client stays cheap.
Every loop is bounded in time and in count.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    statuses: dict[int, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def count(self) -> int:
        return sum(self.statuses.values())

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    def rate(self) -> float:
        """Requests answered 2xx per second: a server that fails fast (401, 503) must not
        look faster than one that does the work."""
        return self.ok / self.duration_s if self.duration_s else 0.0

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank: the smallest value that at least q of all values do not exceed (p99 of
    100 values is the 99th, not the largest); NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    # Rounded first: 0.29 * 100 is 28.999999999999996 in floating point.
    rank = math.ceil(round(q * len(ordered), 9))
    return ordered[min(len(ordered), max(1, rank)) - 1]


def build_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    if length:
        await reader.readexactly(length)
    return status


class _Connection:
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, data: bytes) -> int:
        reused = self.writer is not None
        try:
            return await self._exchange(data)
        except (ConnectionError, asyncio.IncompleteReadError) as exc:
            if not reused or (isinstance(exc, asyncio.IncompleteReadError) and exc.partial):
                raise
            # The server closed the idle keep-alive connection (uvicorn does after 5 s) before
            # answering anything: resend once on a new one, as HTTP clients do.
            self.close()
            return await self._exchange(data)

    async def _exchange(self, data: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(data)
        return await _read_response(self.reader)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def closed_loop(host: str, port: int, requests: Iterator[bytes], *, connections: int,
                      duration_s: float, max_requests: int) -> LoadResult:
    """Saturation: each connection sends its next request as soon as the last is answered."""
    result = LoadResult()
    deadline = time.perf_counter() + duration_s
    sent = 0

    async def worker() -> None:
        nonlocal sent
        connection = _Connection(host, port)
        try:
            while time.perf_counter() < deadline and sent < max_requests:
                sent += 1
                started = time.perf_counter()
                try:
                    status = await connection.request(next(requests))
                except (OSError, asyncio.IncompleteReadError):
                    # Counted, as open_loop does; raising here discarded the whole run.
                    status = 599
                    connection.close()
                result.latencies_ms.append((time.perf_counter() - started) * 1000)
                result.statuses[status] = result.statuses.get(status, 0) + 1
        finally:
            connection.close()

    start = time.perf_counter()
    # The deadline stops new requests; this also bounds one that is never answered.
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(connections))),
                           timeout=duration_s + 30)
    result.duration_s = time.perf_counter() - start
    return result


async def open_loop(host: str, port: int, requests: Iterator[bytes], *, rate_per_s: float,
                    duration_s: float, connections: int = 64) -> LoadResult:
    """Fixed offered load: requests start on schedule whether or not earlier ones finished.

    Latency is measured from the scheduled start, so a server that falls behind is charged
    for the queueing it causes (no coordinated omission).
    """
    result = LoadResult()
    pool: asyncio.Queue[_Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(_Connection(host, port))
    total = int(rate_per_s * duration_s)
    start = time.perf_counter()

    async def one(scheduled: float, data: bytes) -> None:
        connection = await pool.get()
        try:
            status = await connection.request(data)
        except (OSError, asyncio.IncompleteReadError):
            status = 599
            connection.close()
            connection = _Connection(host, port)
        result.latencies_ms.append((time.perf_counter() - scheduled) * 1000)
        result.statuses[status] = result.statuses.get(status, 0) + 1
        pool.put_nowait(connection)

    tasks = []
    for i in range(total):
        scheduled = start + i / rate_per_s
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled, next(requests))))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=duration_s + 30)
    result.duration_s = time.perf_counter() - start
    while not pool.empty():
        pool.get_nowait().close()
    return result
