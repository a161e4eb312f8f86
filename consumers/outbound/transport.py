"""An httpx transport that spreads requests over several small connection pools.

httpcore walks its whole pool, and every queued request, on each request; with tens of
concurrent sends through one pool that walk dominates the sender's CPU (measured: about
3 ms of client CPU per request with 32 connections in one pool, under 1 ms with 16 pools
of 2). Each request goes to the shard with the fewest requests in flight among its origin's
(scheme, host, port and proxy): shards shared by all hosts closed one host's idle connection to
open another's whenever sends alternated between providers, and a hanging provider could hold
every connection.

httpx reads the proxy variables of the environment (HTTP_PROXY, HTTPS_PROXY, ALL_PROXY,
NO_PROXY) only for a client without a transport of its own: this one reads them instead, once,
and sends each request through the proxy httpx would have chosen for its URL, but a request to
loopback directly (switchboard.proxy).
"""

from __future__ import annotations

import asyncio
import ssl
import zlib
from urllib.request import getproxies

import httpx

from switchboard.logs import get_logger
from switchboard.proxy import proxy_for, proxy_urls

log = get_logger(__name__)

# Idle connections are dropped well before servers drop them: httpx keeps them 5 s, and
# uvicorn and Node close after 5 s idle too. A request sent on a connection the server is
# closing just then fails after it may have been read (ReadError: "may have been sent", so
# not retried), which a burst after a quiet spell hit in the bots test.
KEEPALIVE_EXPIRY_S = 2.0
# No send API answers more (a message id and a status); a body larger than this is a web page
# or a download where base_url points wrong, or a provider gone wrong: not kept in memory.
MAX_ANSWER_BYTES = 1024 * 1024
# The Content-Encodings asked for, each decoded here with a bound on what it yields. httpx
# inflates each network read whole: 64 KiB of a compression bomb is 64 MiB in memory before a
# cap on the decoded body sees any of it. httpx asks for br and zstd too, when their packages are
# installed; neither is asked for, and an answer in either is not decoded.
ACCEPTED_ENCODINGS = "gzip, deflate"
# zlib's window bits for a gzip stream (header and trailer) and for a raw deflate one.
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_RAW_DEFLATE_WBITS = -zlib.MAX_WBITS
# Origins whose connections are kept: a base_url per account (and Ubiqio's token URL) makes
# few; past this, the least recently used with nothing in flight is closed.
MAX_ORIGINS = 64
# The proxy route of each scheme and host met: past this, the first met is read again when
# next needed (a few base_urls in practice; the bound is for hosts that come and go).
MAX_ROUTES = 256
# How long a stop waits for connections to close: each is a socket closed at once (no TLS
# close_notify is waited for), so this only bounds a close gone wrong.
CLOSE_TIMEOUT_S = 2.0


class AnswerTooLarge(Exception):
    """A 2xx whose body, on the wire or decoded, is longer than MAX_ANSWER_BYTES: not read to
    its end."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"HTTP {status_code}: an answer of more than {MAX_ANSWER_BYTES} bytes")
        self.status_code = status_code


class ShardedTransport(httpx.AsyncBaseTransport):
    """Each origin (scheme, host, port and the proxy taken to it) has shards of its own, made
    as its requests need them: a connection is only reused for its own host, so sends
    alternating between providers do not close one's connections to open another's, and a
    provider that hangs holds only its own connections."""

    def __init__(self, shards: int = 16, connections_per_shard: int = 2) -> None:
        settings = getproxies()  # as httpx reads them: the environment's
        self._proxies = proxy_urls(settings)  # ProxySettingError if httpx cannot use one
        self._shards_per_origin = shards
        self._limits = httpx.Limits(max_connections=connections_per_shard,
                                    max_keepalive_connections=connections_per_shard,
                                    keepalive_expiry=KEEPALIVE_EXPIRY_S)
        # One TLS context for all: each transport would otherwise load the CA bundle again
        # (25 ms each, a transport per shard). The same settings httpx gives each.
        self._tls = httpx.create_ssl_context()
        # Least recently used first: past MAX_ORIGINS, the oldest idle one is closed.
        self._origins: dict[_OriginKey, _Origin] = {}
        # Origins let go of, being closed in tasks of their own (a stop waits for them).
        self._closing: set[asyncio.Task[None]] = set()
        # The proxy of each scheme and host met, or None (NO_PROXY names it), first met first.
        self._routes: dict[tuple[str, str], str | None] = {}
        if self._proxies:
            log.info("provider requests go through the proxies of the environment",
                     proxies={scheme: _without_credentials(url)
                              for scheme, url in self._proxies.items()},
                     no_proxy=settings.get("no", ""))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        origin, transport, index = self._take(request.url)
        try:
            request.headers["Accept-Encoding"] = ACCEPTED_ENCODINGS
            response = await transport.handle_async_request(request)
            try:  # read here: the connection is released before we count it free
                return await _read_capped(response, request)
            finally:
                await response.aclose()  # done already, unless the answer was cut off
        finally:
            origin.in_flight[index] -= 1
            # Origins met while every kept one was busy are past the bound until one is idle.
            if len(self._origins) > MAX_ORIGINS:
                self._let_go_of_idle_origins()

    def _take(self, url: httpx.URL) -> tuple[_Origin, httpx.AsyncHTTPTransport, int]:
        """The origin of `url` (moved to the most recently used end) and the shard to use,
        counted busy before anything awaits: no idle origin let go of is one about to be used."""
        proxy = self._proxy_for(url)
        key = (url.scheme, url.host, url.port, proxy)
        origin = self._origins.pop(key, None)
        made = origin is None
        if origin is None:
            origin = _Origin(self._shards_per_origin, self._limits, self._tls, proxy)
        self._origins[key] = origin
        transport, index = origin.take()
        if made and len(self._origins) > MAX_ORIGINS:
            self._let_go_of_idle_origins()
        return origin, transport, index

    def _let_go_of_idle_origins(self) -> None:
        """Drop the least recently used origins with nothing in flight until MAX_ORIGINS are
        left (or only busy ones): base_urls are few, but hosts met are never forgotten
        otherwise, each keeping its idle connections open. They are closed in a task of their
        own: a cancel of the request that let go of them (its timeout, a stop) cannot cut the
        close short and leave their sockets to the garbage collector."""
        idle = [key for key, origin in self._origins.items() if not any(origin.in_flight)]
        if idle:
            excess = len(self._origins) - MAX_ORIGINS
            self._close_soon([self._origins.pop(key) for key in idle[:excess]])

    def _close_soon(self, origins: list[_Origin]) -> None:
        task = asyncio.get_running_loop().create_task(_close_all(origins))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _proxy_for(self, url: httpx.URL) -> str | None:
        """The proxy httpx would use for `url` (but none to loopback: switchboard.proxy),
        kept per scheme and host."""
        if not self._proxies:
            return None
        route = (url.scheme, url.host)
        if route not in self._routes:
            if len(self._routes) >= MAX_ROUTES:  # the first met goes: no cost per send
                del self._routes[next(iter(self._routes))]
            self._routes[route] = proxy_for(self._proxies, url)
        return self._routes[route]

    async def aclose(self) -> None:
        """Close every connection, those let go of before too. A cancel of the stop leaves
        the closes running (asyncio.wait does not cancel them); a close still running after
        CLOSE_TIMEOUT_S is cancelled, so that a stop never hangs on one."""
        origins, self._origins = list(self._origins.values()), {}
        if origins:
            self._close_soon(origins)
        if not self._closing:
            return
        _, late = await asyncio.wait(set(self._closing), timeout=CLOSE_TIMEOUT_S)
        for task in late:
            task.cancel()
        if late:
            log.warning("provider connections still closing at the stop: cut short",
                        waited_s=CLOSE_TIMEOUT_S)


_OriginKey = tuple[str, str, int | None, str | None]  # scheme, host, port, proxy


class _Origin:
    """One origin's shards: small pools (httpcore walks its whole pool on each request), made
    only once every shard made has all its connections in use."""

    def __init__(self, shards: int, limits: httpx.Limits, tls: ssl.SSLContext,
                 proxy: str | None) -> None:
        self._most = shards
        self._limits = limits
        self._tls = tls
        self._proxy = proxy
        self._per_shard = limits.max_connections or 1
        self.shards: list[httpx.AsyncHTTPTransport] = []
        self.in_flight: list[int] = []

    def take(self) -> tuple[httpx.AsyncHTTPTransport, int]:
        """The shard with the fewest requests in flight, counted as one more."""
        index = min(range(len(self.shards)), key=self.in_flight.__getitem__, default=-1)
        if (index < 0 or self.in_flight[index] >= self._per_shard) and (
                len(self.shards) < self._most):
            self.shards.append(_transport(self._limits, self._tls, self._proxy))
            self.in_flight.append(0)
            index = len(self.shards) - 1
        self.in_flight[index] += 1
        return self.shards[index], index


async def _close_all(origins: list[_Origin]) -> None:
    """Close every shard of `origins`, the others still when one's close is cancelled (a
    stop's bound, the loop ending): a shard is a few sockets, each closed at once. httpcore
    shields its closes from anyio's cancel scopes, not from a task's cancel: one cut short
    leaves the rest of that shard's connections to the garbage collector."""
    cancelled: asyncio.CancelledError | None = None
    for transport in [shard for origin in origins for shard in origin.shards]:
        try:
            await transport.aclose()
        except asyncio.CancelledError as exc:
            cancelled = exc
    if cancelled is not None:
        raise cancelled


async def _read_capped(response: httpx.Response, request: httpx.Request) -> httpx.Response:
    """The response with its body read, decoded, up to MAX_ANSWER_BYTES: a longer 2xx is
    AnswerTooLarge (what it says cannot be read), a longer error keeps its start (its status
    says what went wrong; the start of its body is all a description quotes). The body on the
    wire is bounded so too (deflate can spend any length on no output), and so is each step of
    decoding it; an encoding that cannot be decoded so is httpx.DecodingError."""
    declared = response.headers.get("content-length", "")
    if response.is_success and declared.isdigit() and int(declared) > MAX_ANSWER_BYTES:
        raise AnswerTooLarge(response.status_code)
    decoder = _Decoder.of(response, request)
    body = bytearray()
    received = 0
    async for chunk in response.aiter_raw():
        received += len(chunk)
        # At least 1 byte asked for (zlib reads 0 as "no limit"): the loop ends past the cap.
        body += decoder.decode(chunk, MAX_ANSWER_BYTES + 1 - len(body))
        if len(body) > MAX_ANSWER_BYTES or received > MAX_ANSWER_BYTES:
            break
    else:
        body += decoder.flush(MAX_ANSWER_BYTES + 1 - len(body))
    if len(body) > MAX_ANSWER_BYTES or received > MAX_ANSWER_BYTES:
        if response.is_success:
            raise AnswerTooLarge(response.status_code)
        del body[MAX_ANSWER_BYTES:]
    # The body as read, decoded: its Content-Encoding and length no longer apply.
    headers = [(name, value) for name, value in response.headers.raw
               if name.lower() not in (b"content-encoding", b"content-length",
                                       b"transfer-encoding")]
    return httpx.Response(response.status_code, headers=headers, content=bytes(body),
                          extensions=response.extensions, request=request)


class _Decoder:
    """Undoes an answer's Content-Encoding (none, gzip or deflate), never yielding more than
    asked for from one call: zlib keeps the rest of the input (`unconsumed_tail`), and the
    caller stops once it has more than it keeps."""

    def __init__(self, wbits: int | None, request: httpx.Request) -> None:
        self._wbits = wbits
        self._request = request
        self._zlib = zlib.decompressobj(wbits) if wbits is not None else None
        self._started = False

    @classmethod
    def of(cls, response: httpx.Response, request: httpx.Request) -> _Decoder:
        encodings = [value.strip().lower() for value in response.headers.get_list(
            "content-encoding", split_commas=True)]
        encodings = [value for value in encodings if value not in ("", "identity")]
        if not encodings:
            return cls(None, request)
        if len(encodings) == 1 and encodings[0] in ("gzip", "x-gzip"):
            return cls(_GZIP_WBITS, request)
        if encodings == ["deflate"]:
            return cls(zlib.MAX_WBITS, request)
        raise httpx.DecodingError(
            f"Content-Encoding {', '.join(encodings)[:100]}, which was not asked for "
            f"(only {ACCEPTED_ENCODINGS})", request=request)

    def decode(self, data: bytes, limit: int) -> bytes:
        if self._zlib is None:
            return data[:limit]
        first, self._started = not self._started, True
        try:
            return self._zlib.decompress(data, limit)
        except zlib.error as exc:
            # "deflate" is a zlib stream (RFC 9110), but some servers send raw deflate: httpx
            # reads either, by trying the other way when the first bytes fail.
            if first and self._wbits == zlib.MAX_WBITS:
                self._wbits = _RAW_DEFLATE_WBITS
                self._zlib = zlib.decompressobj(self._wbits)
                return self.decode(data, limit)
            raise httpx.DecodingError(f"Content-Encoding: {exc}", request=self._request) from None

    def flush(self, limit: int) -> bytes:
        if self._zlib is None:
            return b""
        try:
            return self._zlib.flush(limit)
        except zlib.error as exc:
            raise httpx.DecodingError(f"Content-Encoding: {exc}", request=self._request) from None


def _transport(limits: httpx.Limits, tls: ssl.SSLContext,
               proxy: str | None) -> httpx.AsyncHTTPTransport:
    return httpx.AsyncHTTPTransport(limits=limits, verify=tls, proxy=proxy)


def _without_credentials(url: str) -> str:
    return str(httpx.URL(url).copy_with(username=None, password=None))
