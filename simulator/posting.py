"""The simulator's webhook requests: kept-open connections, and each endpoint held to its share.

A send may name its own webhook URL (Infobip's notifyUrl, Webex's notifyurl, Ubiqio's
statusCallback). A real provider keeps one customer's endpoint from holding up the others, and
so does the simulator: the ingest URL's origin has POST_CONNECTIONS connections of its own,
which no other URL uses, and every other origin shares FOREIGN_CONNECTIONS more. When all of one
connection pool was shared, 32 messages whose URL never answered (10 s a try, 4 tries) stalled
every webhook, ingest's too.

The shared connections are split among the origins being sent to (a request in flight or
waiting): each takes at most its share, FOREIGN_CONNECTIONS // (origins + 1), between 1 and
ORIGIN_SHARE, which leaves room for one more origin; connections freed go round the origins
waiting, in turn, each up to its share. With a fixed 8 each, four origins that never answered
held all 32 and a fifth waited as long as their tries lasted. One holding more than its share
(taken before others came) keeps it until those requests end, as a try always does (the
request timeout): no connection is taken from a request in flight. So five or more silent
origins, come one after another, can still hold all 32 until their first tries end (10 s); the
connections they free then go to the origins below their share.

A request waits for a shared connection at most `wait_s` (CONNECTION_WAIT_S) with no answer
from its origin meanwhile: past it, it is not made and ConnectionsBusy is raised; behind an
origin that never answers it waited without end. A queue behind an origin that answers waits
on: its requests end one after another (a wait counted from the request's start dropped those
queued last, 80 of 120 behind one answering in 0.3 s with a wait of 1.5 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
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
# Requests in flight to one of those origins at most: one that never answers holds no more
# than these, and fewer while others are being sent to (the module's docstring).
ORIGIN_SHARE = 8
# Waiting for one of those connections: longer than a try (10 s) so a busy origin's next
# request can follow, short enough that a job behind a silent one is dropped, not held on.
CONNECTION_WAIT_S = 30.0


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
            # trust_env=False: no proxy variable is read. The simulator stands in for
            # providers, whose webhooks never pass the operator's egress proxy; through it, those
            # to ingest on 127.0.0.1 reached the proxy's own machine, and an ftp:// variable
            # failed every one.
            client = httpx.AsyncClient(
                transport=self._transport, verify=self._tls, timeout=self._timeout_s,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                trust_env=False)
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


class ConnectionsBusy(Exception):
    """No shared connection came free for a request's origin within the wait."""


@dataclass(slots=True)
class _Origin:
    held: int = 0
    answered_at: float = 0.0  # the loop's time a request to it last ended with an answer
    waiting: deque[asyncio.Future[None]] = field(default_factory=deque)  # first come first


class SharedConnections:
    """`size` connections split among the origins being sent to, up to `most` each (the
    module's docstring). Only counts them: a request holding one takes a client of the pool."""

    def __init__(self, size: int, most: int) -> None:
        self.size = size
        self.most = most
        self.free = size
        # An origin while a request to it holds a connection or waits: an entry per URL a
        # send ever named would grow without end.
        self._origins: dict[str, _Origin] = {}
        self._turns: deque[str] = deque()  # origins with a request waiting, the next first

    @property
    def origins(self) -> int:
        """Origins with a request holding a connection or waiting for one."""
        return len(self._origins)

    def share(self) -> int:
        """The most connections an origin takes now: room is left for one more origin."""
        return max(1, min(self.most, self.size // (len(self._origins) + 1)))

    @contextlib.asynccontextmanager
    async def held(self, key: str, wait_s: float) -> AsyncIterator[None]:
        """One of the connections for origin `key`, waiting at most `wait_s` for it."""
        await self._acquire(key, wait_s)
        try:
            yield
        except BaseException:
            self._release(key)
            raise
        self._origins[key].answered_at = asyncio.get_running_loop().time()
        self._release(key)

    async def _acquire(self, key: str, wait_s: float) -> None:
        entry = self._origins.get(key)
        if entry is None:
            entry = self._origins[key] = _Origin()
        if not entry.waiting and self.free and entry.held < self.share():
            entry.held += 1
            self.free -= 1
            return
        loop = asyncio.get_running_loop()
        granted, since = loop.create_future(), loop.time()
        if not entry.waiting:
            self._turns.append(key)
        entry.waiting.append(granted)
        try:
            while not granted.done():  # asyncio.wait: a wait's end does not cancel `granted`
                left = max(since, entry.answered_at) + wait_s - loop.time()
                if left <= 0:
                    raise TimeoutError
                await asyncio.wait([granted], timeout=left)
        except TimeoutError:
            self._give_up(key, entry, granted)
            raise ConnectionsBusy(f"no connection free in {wait_s:g} s") from None
        except BaseException:  # cancelled (a stop)
            self._give_up(key, entry, granted)
            raise

    def _give_up(self, key: str, entry: _Origin, granted: asyncio.Future[None]) -> None:
        if granted.done() and not granted.cancelled():
            self._release(key)  # given to it as it was cancelled: to the next, not lost
            return
        entry.waiting.remove(granted)  # not given to it: still waiting (never cancelled)
        if not entry.waiting:
            with contextlib.suppress(ValueError):
                self._turns.remove(key)
        if not entry.held and not entry.waiting:
            del self._origins[key]
            self._grant()  # one origin fewer: the others' share may have grown

    def _release(self, key: str) -> None:
        entry = self._origins[key]
        entry.held -= 1
        self.free += 1
        if not entry.held and not entry.waiting:
            del self._origins[key]
        self._grant()

    def _grant(self) -> None:
        """Free connections to the origins waiting, in turn, each up to its share."""
        share = self.share()
        passed = 0  # origins in turn at their share since the last grant
        while self.free and passed < len(self._turns):
            key = self._turns.popleft()
            entry = self._origins[key]
            if entry.waiting and entry.held < share:
                entry.waiting.popleft().set_result(None)
                entry.held += 1
                self.free -= 1
                passed = 0
            else:
                passed += 1
            if entry.waiting:
                self._turns.append(key)


class Poster:
    """POSTs webhooks, ingest's origin through its own pool, every other held to its share and
    waiting at most `wait_s` for it."""

    def __init__(self, ingest_url: str | None, timeout_s: float,
                 transport: httpx.AsyncBaseTransport | None = None, *,
                 wait_s: float = CONNECTION_WAIT_S) -> None:
        self._ingest = origin(ingest_url) if ingest_url else None
        self._wait_s = wait_s
        tls = httpx.create_ssl_context()  # one for all clients
        self._ingest_pool = ClientPool(POST_CONNECTIONS, timeout_s, tls, transport)
        # Never waited for: a request takes a client only once it holds one of the shared.
        self._foreign_pool = ClientPool(FOREIGN_CONNECTIONS, timeout_s, tls, transport)
        self._shared = SharedConnections(FOREIGN_CONNECTIONS, ORIGIN_SHARE)

    def foreign(self, url: str | None) -> str | None:
        """The origin of `url` when it is another than ingest's, else None."""
        if url is None:
            return None
        key = origin(url)
        return None if key == self._ingest else key

    @property
    def origins(self) -> int:
        """Origins other than ingest's with a request in flight or waiting."""
        return self._shared.origins

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """The HTTP status the URL answered; raises as httpx does when it was not reached, and
        ConnectionsBusy when no shared connection came free in time."""
        key = origin(url)
        if key == self._ingest:
            return await self._ingest_pool.post(url, body, headers)
        async with self._shared.held(key, self._wait_s):
            return await self._foreign_pool.post(url, body, headers)

    async def aclose(self) -> list[BaseException]:
        """Close every connection; what closing any raised (the rest are closed still)."""
        self._shared = SharedConnections(FOREIGN_CONNECTIONS, ORIGIN_SHARE)
        return [*await self._ingest_pool.aclose(), *await self._foreign_pool.aclose()]
