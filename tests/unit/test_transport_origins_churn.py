"""ShardedTransport under churn, against real servers on 127.0.0.1: more origins than it keeps,
requests cancelled while waiting for an answer, connections the server drops, all at once. No
request fails because another closed its origin, every in-flight count goes back to 0, and
the origins kept come back to MAX_ORIGINS."""

from __future__ import annotations

import asyncio
import random

import httpx

from consumers.outbound import transport
from consumers.outbound.transport import MAX_ORIGINS, ShardedTransport

SERVERS = MAX_ORIGINS + 16
REQUESTS = 600


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """`/ok` answered at once, `/slow` after a while, `/drop` by closing the connection."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1]
            if path == b"/drop":
                return
            if path == b"/slow":
                await asyncio.sleep(0.3)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        return  # the client went; or the test's loop ends with the connection open
    finally:
        writer.close()


async def churn(seed: int) -> None:
    rng = random.Random(seed)
    servers = [await asyncio.start_server(serve, "127.0.0.1", 0) for _ in range(SERVERS)]
    ports = [server.sockets[0].getsockname()[1] for server in servers]
    sharded = ShardedTransport()
    client = httpx.AsyncClient(transport=sharded, timeout=10.0)
    outcomes: dict[str, int] = {}

    async def one(n: int) -> None:
        port = ports[n % len(ports)] if n % 3 else rng.choice(ports)
        path = rng.choice(("/ok", "/ok", "/ok", "/slow", "/drop"))
        cancel = path == "/slow" and rng.random() < 0.5
        try:
            if cancel:
                try:
                    await asyncio.wait_for(
                        client.get(f"http://127.0.0.1:{port}{path}"), rng.uniform(0, 0.2))
                    outcome = "answered"
                except TimeoutError:
                    outcome = "cancelled"
            else:
                response = await client.get(f"http://127.0.0.1:{port}{path}")
                outcome = "answered" if response.text == "ok" else "wrong"
        except httpx.RemoteProtocolError:
            outcome = "dropped" if path == "/drop" else "unexpected drop"
        except Exception as exc:  # noqa: BLE001 - counted: the test says which
            outcome = f"{path} {type(exc).__name__}: {exc}"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1

    try:
        for start in range(0, REQUESTS, 150):  # bounded: 4 waves of 150 at once
            await asyncio.wait_for(
                asyncio.gather(*(one(n) for n in range(start, start + 150))), 60)
        assert set(outcomes) <= {"answered", "cancelled", "dropped"}, outcomes
        assert outcomes["answered"] > REQUESTS // 2
        busy = {key: origin.in_flight for key, origin in sharded._origins.items()
                if any(origin.in_flight)}
        assert busy == {}
        # One more origin closes the idle ones past MAX_ORIGINS.
        extra = await asyncio.start_server(serve, "127.0.0.1", 0)
        servers.append(extra)
        response = await client.get(f"http://127.0.0.1:{extra.sockets[0].getsockname()[1]}/ok")
        assert response.text == "ok"
        assert len(sharded._origins) == MAX_ORIGINS
    finally:
        await client.aclose()
        for server in servers:
            server.close()


def test_origins_closed_under_churn_never_fail_a_request() -> None:
    assert transport.MAX_ORIGINS < SERVERS
    for seed in range(2):
        asyncio.run(churn(seed))
