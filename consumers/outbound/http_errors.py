"""How a provider call fails, the same way for every provider: an HTTP answer that is not a
success, or a request that got none (a timeout, the network), as a SendError, retryable or
permanent, and marked `maybe_sent` where the provider may have taken the message."""

from __future__ import annotations

import asyncio
import math
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpcore
import httpx

from consumers.outbound.base import SendError
from consumers.outbound.responses import body_text
from consumers.outbound.transport import AnswerTooLarge


def retry_after(response: httpx.Response, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header, if present and readable: delta-seconds, or the
    HTTP-date form RFC 9110 allows as well (a date already past means now), counted from the
    answer's own Date when it has one: the provider's clock, not ours, set both, and ours may
    be minutes off theirs (a wait of seconds read as one of an hour, or as none). A long one is
    given as it is: how long to wait at most is the sender's to decide, and a wait of hours
    (a daily quota spent) read as none would have the provider asked again at once."""
    value = response.headers.get("retry-after", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        when = _http_date(value)
        if when is None:
            return None
        sent = _http_date(response.headers.get("date", ""))
        seconds = max(0.0, (when - (sent or now or datetime.now(UTC))).total_seconds())
    return seconds if 0 <= seconds < math.inf else None


def _http_date(value: str) -> datetime | None:
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # "-0000": RFC 5322's "zone unknown"; HTTP-dates are GMT
        when = when.replace(tzinfo=UTC)
    return when


# Answers that say the request was not acted on: 429 and 503 (come back later), 408 (the
# server gave up waiting for the request). Any other 5xx may come after the work was done.
NOT_TAKEN_STATUSES = frozenset({408, 429, 503})
# But Envoy (Istio, Contour, many API gateways) answers each failure of its own with 503, also
# one of the provider's connection after it had passed the request on
# (upstream_reset_before_response_started{connection_termination}): the provider may have
# acted on it. Its text names the reset's reason; only these say no request was passed on (no
# connection made, or refused by its circuit breaker, or a stream HTTP/2 says was not
# processed). No reason named (older Envoys) could be either, and so could an answer after its
# own retries ("retried and the latest reset reason"): it names the last attempt's reason
# only, and an earlier one may have passed the request on (retry_on 5xx or reset).
_GATEWAY_RESET = re.compile(r"disconnect/reset before headers(?P<reason>.*)", re.DOTALL)
_NOT_PASSED_ON = re.compile(r"(?<!latest )reset reason: (?:(?:local|remote) )?"
                            r"(?:connection failure|connection timeout|overflow|"
                            r"refused stream reset)")
# Failures before a byte of the request left: nothing can have reached the provider (a
# ProxyError: the proxy refused to open the tunnel to it).
NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)


def classify_http_error(response: httpx.Response, description: str,
                        code: str | None = None, *, idempotent: bool = False) -> SendError:
    """Map an HTTP failure to retryable or permanent, the same way for every provider.
    `idempotent` requests (a token request) may be repeated even after an ambiguous answer."""
    status = response.status_code
    retryable = status in NOT_TAKEN_STATUSES or status >= 500
    maybe_sent = not idempotent and status >= 500 and (
        status not in NOT_TAKEN_STATUSES or (status == 503 and _passed_on(response)))
    return SendError(f"HTTP {status}: {description}{_redirect_note(response)}",
                     retryable=retryable, code=code or str(status),
                     retry_after_s=retry_after(response), maybe_sent=maybe_sent,
                     throttled=status == 429)


def _passed_on(response: httpx.Response) -> bool:
    """Whether a 503 is a gateway's that had passed the request on (see _GATEWAY_RESET)."""
    found = _GATEWAY_RESET.search(body_text(response)[:2000])
    return found is not None and _NOT_PASSED_ON.search(found.group("reason")) is None


def _redirect_note(response: httpx.Response) -> str:
    """Where a 3xx points, for the operator to correct base_url: redirects are not followed (a
    POST redirected may lose its body, or be sent twice). Its query is left out: it may carry
    a session or a token; a password in it is masked with the description."""
    location = response.headers.get("location", "").strip()
    if not 300 <= response.status_code < 400 or not location:
        return ""
    try:
        url = response.request.url.join(location)
        target = str(url.copy_with(query=None, fragment=None)) + ("?…" if url.query else "")
    except (httpx.InvalidURL, RuntimeError):  # unreadable, or a response without its request
        target = location.split("?", 1)[0]
    return (f"; redirected to {target[:300]} (redirects are not followed: should base_url "
            f"point there?)")


class _Progress:
    """Whether the request itself has started to leave, from httpcore's trace of it (a tunnel's
    CONNECT to a proxy is not it). Until then it waits for a connection, or makes one.

    And whether writing it failed (`write_failed`): httpcore then goes on to read an answer
    (a server may refuse a request before reading its body), so the error raised is the read's
    (ReadError, "server disconnected"), not the WriteError. A write that failed did not all
    reach the server: its bytes were never handed to the socket, or were dropped with the
    connection while still queued (anyio raises it only so). The body's length is told
    (Content-Length, from `json=`), so the server has a request cut short, which it cannot
    act on: the provider does not have the message. (A failed event names no request: one of a
    tunnel's CONNECT counts too, and rightly, as nothing reached the provider then.)

    And where its connection was made (`connected_to`, host and port), when this request made
    one: a proxy's, where the request goes through one (its CONNECT's connection is it), so
    that a failure to connect names the proxy it failed on, not only the provider."""

    __slots__ = ("connected_to", "request_left", "write_failed")

    def __init__(self) -> None:
        self.connected_to: tuple[str, int] | None = None
        self.request_left = False
        self.write_failed = False

    async def trace(self, event: str, info: dict[str, Any]) -> None:
        if event.endswith(".connect_tcp.started"):  # host and port only: never a proxy's login
            host, port = info.get("host"), info.get("port")
            if isinstance(host, str) and isinstance(port, int):
                self.connected_to = (host, port)
        if getattr(info.get("request"), "method", None) == b"CONNECT":
            return
        if event.endswith(".send_request_headers.started"):
            self.request_left = True
        elif (event.endswith((".send_request_headers.failed", ".send_request_body.failed"))
              and isinstance(info.get("exception"), httpcore.WriteError)):
            self.write_failed = True


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str:
    """`scheme://host:port` of `url`, where a failure to connect happened, for the operator to
    check base_url against: never its user or password, path or query (a provider's URL may
    carry a secret in any of them: Omnichat's has the application key in its path)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "an unreadable URL"
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    port = parsed.port or _DEFAULT_PORTS.get(parsed.scheme)
    return f"{parsed.scheme}://{host}" + (f":{port}" if port else "")


def destination(url: str, progress: _Progress) -> str:
    """`origin_of(url)`, and the proxy the request's connection went to, if it went through
    one: the operator checks the proxy (and its NO_PROXY) when connecting to it failed, not
    base_url. Only where this request made the connection (a reused one traces none)."""
    where = origin_of(url)
    if progress.connected_to is None:
        return where
    host, port = progress.connected_to
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return where
    # The host as httpcore connects to it: an internationalized name in its ASCII form.
    provider = (parsed.raw_host.decode("ascii", "replace"),
                parsed.port or _DEFAULT_PORTS.get(parsed.scheme))
    if (host, port) == provider:
        return where
    return f"{where} through the proxy {f'[{host}]' if ':' in host else host}:{port}"


async def post_json(http: httpx.AsyncClient, url: str, payload: Any, *, headers: dict[str, str],
                    timeout_s: float, idempotent: bool = False) -> httpx.Response:
    """POST JSON; network failures and timeouts become retryable SendErrors, marked
    `maybe_sent` unless the request never left (or repeating it is harmless).

    `timeout_s` bounds the whole request: httpx applies it to each phase only (connecting,
    each write, each read), so a provider trickling its answer could hold a call for ever."""
    progress = _Progress()
    deadline = asyncio.timeout(timeout_s)
    try:
        async with deadline:
            return await http.post(url, json=payload, headers=headers, timeout=timeout_s,
                                   extensions={"trace": progress.trace})
    except TimeoutError:
        if not deadline.expired():
            raise
        left = progress.request_left
        raise SendError(f"timed out after {timeout_s}s ("
                        + ("the whole answer had not come" if left
                           else f"not connected to {destination(url, progress)}") + ")",
                        retryable=True, code="timeout",
                        maybe_sent=left and not idempotent) from None
    except AnswerTooLarge as exc:
        raise SendError(f"{exc} (not read: no send API answers so much; is base_url the API's "
                        f"root?)", retryable=True, code="bad_response",
                        maybe_sent=not idempotent) from None
    except httpx.DecodingError as exc:
        # An answer came, but its body does not decode (a broken Content-Encoding, or one not
        # asked for): not a TransportError, and it would otherwise escape as a crash of the
        # send. The provider had the whole request, so it may have acted on it.
        reason = " ".join(str(exc).split())[:200]
        raise SendError("the answer's body could not be decoded (Content-Encoding)"
                        + (f": {reason}" if reason else ""),
                        retryable=True, code="bad_response",
                        maybe_sent=not idempotent) from None
    except httpx.TransportError as exc:
        maybe_sent = not idempotent and not isinstance(exc, NOT_SENT_ERRORS)
        if isinstance(exc, httpx.TimeoutException):
            where = f", connecting to {destination(url, progress)}" if isinstance(
                exc, httpx.ConnectTimeout) else ""
            raise SendError(f"timed out after {timeout_s}s ({type(exc).__name__}{where})",
                            retryable=True, code="timeout", maybe_sent=maybe_sent) from None
        # The reason (a name not resolved, a certificate refused) is what tells a misspelt
        # base_url or a TLS-intercepting proxy from a provider that is down.
        reason = " ".join(str(exc).split())[:200]
        cut_short = progress.write_failed  # the connection broke while the request was written
        raise SendError(f"network error: {type(exc).__name__}" + (f": {reason}" if reason else "")
                        + f" (sending to {destination(url, progress)})"
                        + (" (the connection broke before the whole request was written: not "
                           "sent)" if cut_short else ""),
                        retryable=True, code="network",
                        maybe_sent=maybe_sent and not cut_short) from None
