"""The benchmarks' arithmetic: what they print is only as good as these pure parts."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Iterator

import pytest

from bench.loadgen import LoadResult, build_request, closed_loop, open_loop, percentile

HUNDRED = [float(n) for n in range(1, 101)]


@pytest.mark.parametrize(("values", "q", "expected"), [
    (HUNDRED, 0.99, 99.0),  # not the largest: one value in a hundred is above the p99
    (HUNDRED, 0.5, 50.0),
    (HUNDRED, 0.29, 29.0),  # 0.29 * 100 is just under 29 in floating point
    (HUNDRED, 1.0, 100.0),
    (HUNDRED, 0.0, 1.0),
    ([2.0, 1.0], 0.5, 1.0),  # sorted first; the median of two is the lower one
    ([7.0], 0.99, 7.0),
])
def test_percentile_is_the_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


def test_percentile_of_nothing_is_nan() -> None:
    assert math.isnan(percentile([], 0.99))
    assert math.isnan(LoadResult().percentile(0.5))


def test_a_load_result_uses_the_same_percentile() -> None:
    assert LoadResult(latencies_ms=HUNDRED).percentile(0.99) == 99.0


def test_the_rate_counts_only_2xx_answers() -> None:
    """The saturation figure and the full/ceiling ratio are of requests the server handled."""
    result = LoadResult(statuses={200: 300, 202: 100, 401: 500, 599: 100}, duration_s=2.0)
    assert result.rate() == 200.0
    assert result.count == 1000


def test_a_result_without_a_duration_has_no_rate() -> None:
    assert LoadResult(statuses={200: 5}).rate() == 0.0


async def _serve(answer: bytes | None) -> asyncio.Server:
    """A server on 127.0.0.1 that reads each request and sends `answer`, or hangs up."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                if answer is None:
                    return
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def _port(server: asyncio.Server) -> int:
    port: int = server.sockets[0].getsockname()[1]
    return port


def _requests(port: int) -> Iterator[bytes]:
    return itertools.repeat(build_request("127.0.0.1", port, "/w", b"{}", {}))


async def test_every_request_of_a_closed_loop_is_counted_once() -> None:
    async with await _serve(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok") as server:
        result = await closed_loop("127.0.0.1", _port(server), _requests(_port(server)),
                                   connections=3, duration_s=60, max_requests=20)
    assert result.statuses == {202: 20}
    assert len(result.latencies_ms) == 20


async def test_a_closed_loop_counts_connection_errors_and_goes_on() -> None:
    async with await _serve(None) as server:
        result = await closed_loop("127.0.0.1", _port(server), _requests(_port(server)),
                                   connections=2, duration_s=60, max_requests=10)
    assert result.statuses == {599: 10}
    assert result.ok == 0
    assert len(result.latencies_ms) == 10


async def test_an_open_loop_sends_its_whole_schedule() -> None:
    async with await _serve(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") as server:
        result = await open_loop("127.0.0.1", _port(server), _requests(_port(server)),
                                 rate_per_s=500, duration_s=0.05, connections=4)
    assert result.statuses == {200: 25}
    assert len(result.latencies_ms) == 25
