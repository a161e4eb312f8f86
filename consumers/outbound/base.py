"""What every outbound provider client shares: the interface, errors, and rate limiting.

One module per provider (Courier style) exposes `NAME`, a pydantic `Config` for the account's
`[accounts.<name>.outbound]` table, and `Client(config, http, context)` implementing `send`.
Clients translate a command into the provider's send API call and classify every failure as
retryable (timeouts, 5xx, 429) or permanent (validation, auth): the sender decides on retries.
A 2xx that is a web page is no send API's answer, whatever a client would read from it: the
rate-limited POST every client makes fails it (`bad_response`, maybe sent). Nor is a 2xx without
what the provider's documents say its every acceptance carries (`no_acceptance`).
"""

from __future__ import annotations

import asyncio
import math
import mimetypes
import re
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, Generic, NoReturn, Protocol, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator

from consumers.handling import slot_given_up
from consumers.outbound.transport import AnswerTooLarge
from switchboard.accounts import Account
from switchboard.commands import Button, OutboundCommand
from switchboard.events import Media
from switchboard.logs import scrub
from switchboard.urls import http_url


class SendError(Exception):
    """A send failed. `retryable` tells the sender whether trying again can help; `called`
    whether the provider was called at all (results count attempts as provider calls);
    `maybe_sent` that the provider may have taken the message all the same (a timeout after
    the request went out, a 500 or a gateway's 502/504): sending it again could send it twice,
    so the sender does not, whatever `retryable` says. `throttled`: the provider refused it for
    the account's rate (a 429, Webex's 7020), so the account's other sends wait too."""

    def __init__(self, description: str, *, retryable: bool, code: str | None = None,
                 retry_after_s: float | None = None, called: bool = True,
                 maybe_sent: bool = False, throttled: bool = False) -> None:
        # Masked here, where every send failure is described: provider texts go into results
        # on Kafka (not a log line, so not masked there), and a provider may quote the key or
        # the Authorization header it was given back in its refusal.
        description = scrub(description)
        super().__init__(description)
        self.description = description
        self.retryable = retryable
        self.code = code
        self.retry_after_s = retry_after_s
        self.throttled = throttled
        self.called = called
        self.maybe_sent = maybe_sent


@dataclass(frozen=True, slots=True)
class SendReceipt:
    """The provider accepted the message; status webhooks will follow for this id."""

    provider_message_id: str | None
    provider_status: str | None = None


@dataclass(frozen=True, slots=True)
class SendContext:
    """What a client needs from Switchboard besides its own config."""

    account: str
    # Where the provider should send this account's status webhooks, or None. Providers add no
    # credentials to a URL given with a message, so it must carry them itself: it has the
    # account's token when its webhooks authenticate by token, and is None for other schemes
    # (the webhook configured at the provider, with its credentials, then reports).
    webhook_url: str | None
    # The account's ingest URL as is, for a provider that adds credentials of its own to a
    # per-message URL when told to (Webex's notifyurlAuthId).
    plain_webhook_url: str | None = None

    @classmethod
    def for_account(cls, account: Account, public_url: str | None) -> SendContext:
        if public_url is None:
            return cls(account=account.name, webhook_url=None)
        plain = f"{public_url.rstrip('/')}/webhooks/{account.provider}/{quote(account.name)}"
        auth = account.auth
        if auth.scheme != "token":
            return cls(account=account.name, webhook_url=None, plain_webhook_url=plain)
        query = urlencode({auth.query_param: auth.secret_values()[0]})
        return cls(account=account.name, webhook_url=f"{plain}?{query}", plain_webhook_url=plain)


class OutboundConfig(BaseModel):
    """Options every provider's outbound config accepts."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    # The secrets this provider's client puts into an HTTP header as they are (not encoded).
    header_secrets: ClassVar[frozenset[str]] = frozenset()

    base_url: str
    timeout_s: float = Field(default=10.0, gt=0)
    rate_per_s: float = Field(default=20.0, gt=0, description="sustained sends per second")
    burst: int = Field(default=20, ge=1)
    channel: str = "sms"

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        """Checked at start: httpx would refuse every request, and the failure read as one
        the provider may have taken."""
        http_url(value, "https://api.example.com")
        return value

    @field_validator("*")
    @classmethod
    def _secret_fits_a_request(cls, value: Any, info: ValidationInfo) -> Any:
        """A secret read with its file's newline cannot go into a header: every send would
        fail before leaving, reported as possibly sent. Nor can one with other than ASCII
        (httpx encodes header values as ASCII); a secret that is encoded first may."""
        if isinstance(value, SecretStr):
            secret = value.get_secret_value()
            if not secret.isprintable():
                raise ValueError("has control characters (a newline from the file or variable "
                                 "it was read from?)")
            if info.field_name in cls.header_secrets and not secret.isascii():
                raise ValueError("has characters other than ASCII, which an HTTP header cannot "
                                 "carry (a quote or dash pasted from a document?)")
        return value


ConfigT = TypeVar("ConfigT", bound=OutboundConfig)


class OutboundClient(Protocol):
    async def send(self, command: OutboundCommand) -> SendReceipt:
        """Send one command; raise SendError on failure."""


# Set by the sender to its worker's winding-down event around a send: a request still waiting
# for the rate limit is then not made (a SendError before the provider is called), so the
# command is handed back unsent instead of being sent while the worker stops.
WINDING_DOWN: ContextVar[asyncio.Event | None] = ContextVar("winding_down", default=None)


class SendProgress:
    """How far one provider call has gone: whether a send request of it has left and is not
    answered yet (`awaiting_answer`). A call cut short while none is, say while a Ubiqio token
    request is in flight, has given the provider no message: the sender hands it back unsent
    rather than reporting its outcome unknown."""

    __slots__ = ("awaiting_answer",)

    def __init__(self) -> None:
        self.awaiting_answer = False


# Set by the sender, one per provider call (see SendProgress); None outside the sender.
SEND_PROGRESS: ContextVar[SendProgress | None] = ContextVar("send_progress", default=None)


# Set by the sender around a send: how long its account's sends are still held (seconds, 0 when
# not), because the provider asked another of its sends to wait (Retry-After, a 429). A send
# that was waiting for the rate limit meanwhile is then not made (Held): it waits for the hold
# as any send met by it, rather than asking the provider again while it said to wait.
HELD_FOR: ContextVar[Callable[[], float] | None] = ContextVar("held_for", default=None)


class Held(SendError):
    """The request was not made: the account's sends were held while it waited for the rate
    limit (see HELD_FOR)."""

    def __init__(self) -> None:
        super().__init__("not sent: the provider asked this account's sends to wait",
                         retryable=True, code="held", called=False)


class Stopping(SendError):
    """The request was not made: the worker winds down (see WINDING_DOWN)."""

    def __init__(self) -> None:
        super().__init__("not sent: the worker is stopping", retryable=True, code="stopping",
                         called=False)


class TokenBucket:
    """Per-account rate limit: waits until a token is available instead of failing."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate = rate_per_s
        self.capacity = float(burst)
        self.tokens = float(burst)
        self.updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Stopping (a SendError: not called, retryable) if the worker winds down first.
        The record's concurrency slot is another's while this waits (slot_given_up): an
        account's backlog behind its rate limit must not hold up the other accounts."""
        async with slot_given_up():
            await self._take_token()

    async def _take_token(self) -> None:
        stopping = WINDING_DOWN.get()
        async with self._lock:
            while True:
                if stopping is not None and stopping.is_set():
                    raise Stopping()
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                wait_s = (1 - self.tokens) / self.rate
                if stopping is None:
                    await asyncio.sleep(wait_s)
                    continue
                try:
                    await asyncio.wait_for(stopping.wait(), wait_s)
                except TimeoutError:
                    continue
                raise Stopping()


def retry_after(response: httpx.Response, now: datetime | None = None) -> float | None:
    """Seconds from a Retry-After header, if present and readable: delta-seconds, or the
    HTTP-date form RFC 9110 allows as well (a date already past means now). A long one is
    given as it is: how long to wait at most is the sender's to decide, and a wait of hours
    (a daily quota spent) read as none would have the provider asked again at once."""
    value = response.headers.get("retry-after", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # "-0000": RFC 5322's "zone unknown"; HTTP-dates are GMT
            when = when.replace(tzinfo=UTC)
        seconds = max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    return seconds if 0 <= seconds < math.inf else None


# Answers that say the request was not acted on: 429 and 503 (come back later), 408 (the
# server gave up waiting for the request). Any other 5xx may come after the work was done.
NOT_TAKEN_STATUSES = frozenset({408, 429, 503})
# Failures before a byte of the request left: nothing can have reached the provider (a
# ProxyError: the proxy refused to open the tunnel to it).
NOT_SENT_ERRORS = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError)


def classify_http_error(response: httpx.Response, description: str,
                        code: str | None = None, *, idempotent: bool = False) -> SendError:
    """Map an HTTP failure to retryable or permanent, the same way for every provider.
    `idempotent` requests (a token request) may be repeated even after an ambiguous answer."""
    status = response.status_code
    retryable = status in NOT_TAKEN_STATUSES or status >= 500
    maybe_sent = status >= 500 and status not in NOT_TAKEN_STATUSES and not idempotent
    return SendError(f"HTTP {status}: {description}{_redirect_note(response)}",
                     retryable=retryable, code=code or str(status),
                     retry_after_s=retry_after(response), maybe_sent=maybe_sent,
                     throttled=status == 429)


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
    CONNECT to a proxy is not it). Until then it waits for a connection, or makes one."""

    __slots__ = ("request_left",)

    def __init__(self) -> None:
        self.request_left = False

    async def trace(self, event: str, info: dict[str, Any]) -> None:
        if (event.endswith(".send_request_headers.started")
                and getattr(info.get("request"), "method", None) != b"CONNECT"):
            self.request_left = True


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
                        + ("the whole answer had not come" if left else "not connected") + ")",
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
            raise SendError(f"timed out after {timeout_s}s ({type(exc).__name__})",
                            retryable=True, code="timeout", maybe_sent=maybe_sent) from None
        # The reason (a name not resolved, a certificate refused) is what tells a misspelt
        # base_url or a TLS-intercepting proxy from a provider that is down.
        reason = " ".join(str(exc).split())[:200]
        raise SendError(f"network error: {type(exc).__name__}" + (f": {reason}" if reason else ""),
                        retryable=True, code="network", maybe_sent=maybe_sent) from None


class ProviderClient(Generic[ConfigT]):
    """The state every provider's `Client` keeps, and its rate-limited POST.

    Subclasses add their URL and headers and implement `send`; the bucket and the timeout
    are applied here so that no client can skip them.
    """

    def __init__(self, config: ConfigT, http: httpx.AsyncClient, context: SendContext) -> None:
        self._config = config
        self._http = http
        self._context = context
        self._bucket = TokenBucket(config.rate_per_s, config.burst)

    async def _post(self, url: str, payload: Any, headers: dict[str, str]) -> httpx.Response:
        """POST a send request once the account's rate limit allows it."""
        await self._bucket.acquire()
        held_for = HELD_FOR.get()
        if held_for is not None and held_for() > 0:
            raise Held()
        progress = SEND_PROGRESS.get()
        if progress is not None:
            progress.awaiting_answer = True
        response = await post_json(self._http, url, payload, headers=headers,
                                   timeout_s=self._config.timeout_s)
        if progress is not None:  # not on a failure: the provider may have the message then
            progress.awaiting_answer = False
        if response.is_success and (problem := web_page(response, self._config.base_url)):
            raise SendError(problem, retryable=True, code="bad_response", maybe_sent=True)
        return response


# --- reading responses -----------------------------------------------------------------------


def json_body(response: httpx.Response) -> Any:
    """The parsed JSON body, or None when there is none or it is not JSON.

    Error answers from gateways and proxies are often HTML or empty: reading must not fail.
    Nor may JSON nested deeper than Python's parser goes (RecursionError, not a ValueError):
    an error escaping a client is reported as a bug (`outcome_unknown`), not as the answer.
    """
    try:
        return response.json()
    except (ValueError, RecursionError):
        return None


def media_type(response: httpx.Response) -> str:
    """The response's Content-Type without its parameters, lower case ("" if none)."""
    content_type: str = response.headers.get("content-type", "")
    return content_type.split(";", 1)[0].strip().lower()


_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})


def is_html_page(response: httpx.Response) -> bool:
    """Whether the body is a web page: an HTML type, and markup. No send API answers so: a
    website, a login page or a proxy's welcome page does, where base_url points wrong. A short
    text (or JSON) under a framework's default text/html is the API's own answer."""
    return (media_type(response) in _HTML_TYPES
            and response.content.lstrip()[:1] == b"<")


def web_page(response: httpx.Response, base_url: str) -> str | None:
    """What a web page answered for the API says of base_url; None if it is no web page."""
    if not is_html_page(response):
        return None
    return (f"HTTP {response.status_code} with an HTML page ({media_type(response)}), not the "
            f"API's JSON: is base_url {base_url} the API's root? The page: "
            f"{page_title(response) or snippet(response)}")


def no_acceptance(response: httpx.Response, missing: str) -> SendError:
    """A 2xx without what the provider's every acceptance carries (`missing`, the field and
    whose documents say so): not its answer, so not one that says the message was taken (a
    base_url pointing at another API, most likely). The request reached something that may
    have acted on it: maybe sent, so never sent again."""
    try:
        url = response.request.url.copy_with(query=None, fragment=None)
        sent_to = f"sent to {url}: "
    except RuntimeError:  # a response without its request
        sent_to = ""
    return SendError(f"HTTP {response.status_code} without {missing}: not the API's answer "
                     f"({sent_to}is base_url the API's root?). The answer: {snippet(response)}",
                     retryable=True, code="bad_response", maybe_sent=True)


def body_text(response: httpx.Response) -> str:
    """The body as text, in the charset it is labelled with, else UTF-8, what cannot be read
    replaced. Not httpx's `response.text`: it decodes with whatever codec the label names, and
    some raise for any body (UTF-16 without a byte order mark, a codec of bytes like base64):
    the provider's answer would escape its client as a bug."""
    charset = response.charset_encoding
    if charset:
        try:
            return response.content.decode(charset, "replace")
        except (LookupError, UnicodeError):  # unknown, not a text encoding, or idna's
            pass
    return response.content.decode("utf-8", "replace")


_TITLE = re.compile(r"<title[^>]*>([^<]{1,200})", re.IGNORECASE)


def page_title(response: httpx.Response) -> str | None:
    """An HTML page's title ("Sign in", "Welcome to nginx!"): what tells where a request went,
    where the page's start is scripts and styles."""
    found = _TITLE.search(body_text(response)[:20_000])
    title = " ".join(found.group(1).split()) if found else ""
    return title or None


def snippet(response: httpx.Response) -> str:
    """A short description of a body we could not read: its start, or the reason phrase."""
    text = " ".join(body_text(response).split())[:200]
    return text or response.reason_phrase or "no body"


def as_str(value: Any) -> str | None:
    """A non-empty string field, else None (for fields that are strings only)."""
    return value if isinstance(value, str) and value else None


def as_text(value: Any) -> str | None:
    """A non-empty string, or an int as its digits, else None: ids and codes come as either."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    return str(value) or None


# --- building requests -----------------------------------------------------------------------


def refuse(reason: str) -> NoReturn:
    """A command the provider cannot carry: permanent, so it is never retried."""
    raise SendError(reason, retryable=False, code="unsupported_content", called=False)


# The channel events name when their webhook did not say it (normalizers.channels). A reply
# copies its inbound event's channel, so a reply to such an event names it too.
UNKNOWN_CHANNEL = "unknown"


def is_unknown_channel(channel: str) -> bool:
    return channel.strip().lower() == UNKNOWN_CHANNEL


def refuse_unknown_channel(provider: str, fix: str) -> NoReturn:
    """A command on the `unknown` channel, refused as any channel a client cannot send on
    (permanent, nothing sent), saying why it is unknown: the provider's own refusal would not
    (Infobip: a 400 on its channel enum), and the fix is where the inbound came in."""
    refuse(f"the command's channel is unknown: it answers an inbound event whose webhook did "
           f"not say its channel, so {provider} cannot tell which channel to send on; {fix}")


def with_choices(text: str | None, buttons: Sequence[Button]) -> str:
    """Buttons on a channel without buttons: "1) Yes 2) No" after the text.

    The user answers with plain text, so every provider renders the choices the same way.
    """
    choices = " ".join(f"{number}) {button.title}" for number, button in enumerate(buttons, 1))
    return f"{text}\n{choices}" if text else choices


def guess_content_type(media: Media) -> str | None:
    """The media's content type as given, else a guess from the URL's extension, else None."""
    return media.content_type or mimetypes.guess_type(urlsplit(media.url).path)[0]


def media_kind(media: Media) -> str:
    """"image", "video", "audio" or "file", from the content type or else the URL's extension."""
    content_type = guess_content_type(media) or ""
    major = content_type.split("/", 1)[0].strip().lower()
    return major if major in ("image", "video", "audio") else "file"
