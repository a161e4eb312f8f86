"""An httpx transport that spreads requests over several small connection pools.

httpcore walks its whole pool, and every queued request, on each request; with tens of
concurrent sends through one pool that walk dominates the sender's CPU (measured: about
3 ms of client CPU per request with 32 connections in one pool, under 1 ms with 16 pools
of 2). Each request goes to the shard with the fewest requests in flight.
"""

from __future__ import annotations

import httpx

# Idle connections are dropped well before servers drop them: httpx keeps them 5 s, and
# uvicorn and Node close after 5 s idle too. A request sent on a connection the server is
# closing just then fails after it may have been read (ReadError: "may have been sent", so
# not retried), which a burst after a quiet spell hit in the bots test.
KEEPALIVE_EXPIRY_S = 2.0


class ShardedTransport(httpx.AsyncBaseTransport):
    def __init__(self, shards: int = 16, connections_per_shard: int = 2) -> None:
        limits = httpx.Limits(max_connections=connections_per_shard,
                              max_keepalive_connections=connections_per_shard,
                              keepalive_expiry=KEEPALIVE_EXPIRY_S)
        self._shards = [httpx.AsyncHTTPTransport(limits=limits) for _ in range(shards)]
        self._in_flight = [0] * shards

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = min(range(len(self._shards)), key=self._in_flight.__getitem__)
        self._in_flight[index] += 1
        try:
            response = await self._shards[index].handle_async_request(request)
            await response.aread()  # release the connection before we count it free
            return response
        finally:
            self._in_flight[index] -= 1

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()
