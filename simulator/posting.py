"""The simulator's webhook requests: kept-open connections, and each endpoint held to its share.

A send may name its own webhook URL (Infobip's notifyUrl, Webex's notifyurl, Ubiqio's
statusCallback). A real provider keeps one customer's endpoint from holding up the others, and
so does the simulator: the ingest URL's origin has POST_CONNECTIONS connections of its own,
which no other URL uses, and every other origin shares FOREIGN_CONNECTIONS more, with at most
ORIGIN_SHARE requests in flight per origin. When all of one connection pool was shared, 32
messages whose URL never answered (10 s a try, 4 tries) stalled every webhook, ingest's too.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

# Webhook requests to the ingest URL's origin in flight at once: each through a client of its
# own with one connection, kept open. httpcore walks its whole pool, polling each idle
# connection's socket, and every request queued in it, on each request, and closes every idle
# connection once it holds more than its keep-alive limit: 256 workers on one client's 100
# connections (20 kept) spent most of the simulator's CPU in that walk and in new connections
# (cProfile: 140 s of 154 under a Bird load, 15,000 connects for 5,000 webhooks), and one
# client of 32 kept connections still a third of it.
POST_CONNECTIONS = 32
# The same for every other origin, together: URLs that sends named.
FOREIGN_CONNECTIONS = 32
# Requests in flight to one of those origins: one that never answers holds no more than these.
ORIGIN_SHARE = 8


# Cached: each webhook's URL is looked up, most of them an account's ingest URL (1 us a parse).
@functools.lru_cache(maxsize=1024)
def origin(url: str) -> str:
    """The endpoint a URL's requests share: scheme, host and port (the URL itself when it does
    not parse; httpx refuses it later, and it is failed like any unreachable one). Not its
    user info, nor a default port written out: a user per message in URLs naming one host
    gave each its own share, and together they took every connection and the whole queue."""
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError past 65535
    except ValueError:
        return url
    scheme, host = parts.scheme.lower(), parts.hostname or ""  # hostname: lower case
    host = f"[{host}]" if ":" in host else host
    port = _DEFAULT_PORTS.get(scheme) if port is None else port
    return f"{scheme}://{host}" if port is None else f"{scheme}://{host}:{port}"


_DEFAULT_PORTS = {"http": 80, "https": 443}


class ClientPool:
    """Up to `size` clients of one kept-open connection each, made as first needed; a request
    waits for a free one."""

    def __init__(self, size: int, timeout_s: float, tls: ssl.SSLContext | None = None,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.size = size
        self._timeout_s = timeout_s
        self._tls = tls or httpx.create_ssl_context()  # each loads the CA bundle (25 ms)
        self._transport = transport
        self._clients: list[httpx.AsyncClient] = []
        self._idle: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """The HTTP status `url` answered, through the first free client."""
        if self._idle.empty() and len(self._clients) < self.size:
            client = httpx.AsyncClient(
                transport=self._transport, verify=self._tls, timeout=self._timeout_s,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))
            self._clients.append(client)
        else:
            client = await self._idle.get()
        try:
            return (await client.post(url, content=body, headers=headers)).status_code
        finally:
            self._idle.put_nowait(client)

    async def aclose(self) -> list[BaseException]:
        """Close every client, whatever one's close raises; what they raised."""
        clients, self._clients, self._idle = self._clients, [], asyncio.Queue()
        errors: list[BaseException] = []
        for client in clients:
            try:
                await client.aclose()
            except Exception as exc:  # noqa: BLE001 - the others are still closed
                errors.append(exc)
        return errors


@dataclass(slots=True)
class _Share:
    slots: asyncio.Semaphore
    users: int = 0  # requests holding a slot or waiting for one


class Poster:
    """POSTs webhooks, ingest's origin through its own pool, every other held to its share."""

    def __init__(self, ingest_url: str | None, timeout_s: float,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._ingest = origin(ingest_url) if ingest_url else None
        tls = httpx.create_ssl_context()  # one for all clients
        self._ingest_pool = ClientPool(POST_CONNECTIONS, timeout_s, tls, transport)
        self._foreign_pool = ClientPool(FOREIGN_CONNECTIONS, timeout_s, tls, transport)
        # Per origin other than ingest's, while a request to it is in flight or waits: an
        # entry per URL a send ever named would grow without end.
        self._shares: dict[str, _Share] = {}

    def foreign(self, url: str | None) -> str | None:
        """The origin of `url` when it is another than ingest's, else None."""
        if url is None:
            return None
        key = origin(url)
        return None if key == self._ingest else key

    @property
    def origins(self) -> int:
        """Origins other than ingest's with a request in flight or waiting."""
        return len(self._shares)

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """The HTTP status the URL answered; raises as httpx does when it was not reached."""
        key = origin(url)
        if key == self._ingest:
            return await self._ingest_pool.post(url, body, headers)
        async with self._share(key):
            return await self._foreign_pool.post(url, body, headers)

    @contextlib.asynccontextmanager
    async def _share(self, key: str) -> AsyncIterator[None]:
        share = self._shares.get(key)
        if share is None:
            share = self._shares[key] = _Share(asyncio.Semaphore(ORIGIN_SHARE))
        share.users += 1
        try:
            async with share.slots:
                yield
        finally:
            share.users -= 1
            if share.users == 0:  # none waits for it: the next request makes a fresh one
                del self._shares[key]

    async def aclose(self) -> list[BaseException]:
        """Close every connection; what closing any raised (the rest are closed still)."""
        self._shares = {}
        return [*await self._ingest_pool.aclose(), *await self._foreign_pool.aclose()]
