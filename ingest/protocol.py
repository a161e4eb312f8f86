"""uvicorn's HTTP protocol for ingest, with a bound on a request's head and JSON refusals.

uvicorn's fast parser (httptools, on llhttp) sets no limit on a request's URL or headers: it
kept every byte until the head ended, so one connection sending header lines without end
grew the process by about twice what it sent (200 MB sent: 450 MB more), before any account
was known or any authentication ran. And what the parser could not read got a plain-text
400, where every other refusal ingest gives is JSON.

Nor did anything bound how long a client takes: uvicorn's keep-alive timer closes a kept-alive
connection left idle, but is not armed on a new one, and the first byte of a request cancels
it. A connection that sent nothing, or a head a byte every few seconds, or the body of a request
answered without it (a 404), was held for as long as the client liked.

This is uvicorn's own protocol with a few integer additions per header: a request whose URL
and headers pass MAX_HEAD_BYTES, or with more than MAX_HEADERS headers, gets a 431; one the
parser cannot read a 400; one whose head is not whole within the head's deadline a 408; one
with a transfer coding other than chunked a 501 (_only_chunked); all with the JSON error
body, and the connection closed. One timer per connection, armed only
while the connection waits for a head or for a body no one reads. Those bounds, the JSON
refusal written and the connection hung up on after it are in ingest.protocol_refusals.

An answer that comes before its request's body is whole (after `Expect: 100-continue`, or
to a client that asked to close) ends its connection as ingest.early_answers says.

A request whose head is whole while the process is at SWITCHBOARD_HTTP_MAX_CONNECTIONS
(ingest.limits) gets a JSON 503, hung up on as after any refusal: uvicorn's limit_concurrency
answered plain text, counted nothing, logged each, and reset a client still sending its body.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import httptools
import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle
from uvicorn.server import ServerState

from ingest import metrics
from ingest.early_answers import closing_unless_continued, lingering_if_unread
from ingest.limits import Deadlines, deadlines_of, left, over_limit
from ingest.protocol_refusals import MAX_HEAD_BYTES, MAX_HEADERS, RefusingProtocol
from ingest.uvicorn_api import uvicorn_mismatches
from switchboard.logs import get_logger
from switchboard.throttle import ThrottledLog

if TYPE_CHECKING:
    from uvicorn._types import ASGI3Application

log = get_logger(__name__)

# Each header is at least its name, a colon, its value and CRLF on the wire.
_HEADER_FRAMING = 3

# What it takes of uvicorn's private code, checked as it is imported (by `serve`, as it starts).
if mismatched := uvicorn_mismatches():
    raise RuntimeError(
        f"uvicorn {uvicorn.__version__} is not a version ingest's HTTP protocol "
        f"(ingest.protocol) was written for: {'; '.join(mismatched)}. Install the one "
        "constraints.txt pins, within pyproject.toml's range for uvicorn.")


# Where the parser is: between requests, in a head begun in the current read or in an earlier
# one, in a body (the head handed to the app).
_IDLE, _HEAD_BEGUN, _HEAD_GOES_ON, _BODY = 0, 1, 2, 3


class _HeadTooLarge(Exception):
    """Raised from a parser callback: the only way to stop llhttp mid-buffer."""


class _UnknownTransferCoding(Exception):
    """Raised from the parser's header callback: a transfer coding other than chunked."""


class _OverLimit(Exception):
    """Raised from the parser's callback as a head ends: the request is not started."""


def _only_chunked(value: bytes) -> bool:
    """Whether a Transfer-Encoding names chunked alone. llhttp takes any coding before a final
    chunked (`gzip, chunked`) and hands the body on still in the others: read as it was sent,
    it was a dead letter. RFC 9112 s6.1: a coding the server does not understand is a 501
    (as uvicorn's h11 answers); one without chunked last the parser refuses itself (400)."""
    if value.lower() == b"chunked":  # as every client sends it
        return True
    return all(coding.strip(b" \t").lower() in (b"chunked", b"") for coding in value.split(b","))


class IngestProtocol(RefusingProtocol):
    """uvicorn's httptools protocol, its head bounded and its refusals JSON.

    Two counts, as the parser hands a header over only once the next one starts: the URL and
    headers handed over (exact, so a head over the limit is always refused), and the bytes
    of reads that all went into one unfinished head (a header value without end, which the
    parser holds until it ends). The read a head began in is not counted (it may hold the
    end of the request before): at most one read more than the limit is held.
    """

    # Anyone can send these, as often as they like: logged once a minute per status.
    refusals = ThrottledLog(log)
    _phase = _IDLE
    _head_bytes = 0
    _unfinished_bytes = 0
    _timer: asyncio.TimerHandle | None = None
    _answering: RequestResponseCycle | None = None  # the one the app has, not a queued one
    _hang_up_after: RequestResponseCycle | None = None  # answered before its body was asked
    _late_body_ended = False  # in this read: the connection is idle, as after an answer

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.deadlines: Deadlines = deadlines_of(self.app)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # uvicorn's keep-alive timer is not armed on a new connection: this one is.
        self._timer = self.loop.call_later(self.deadlines.head_s, self._expired)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()  # and lets go of this protocol now, not at the deadline
            self._timer = None
        if self._leaving:
            self._leaving = False
            left(self.server_state, -1)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's own, but for the refusals: it logs and answers them in plain text.
        if self._hung_up:
            return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _HeadTooLarge):
                self._refuse_head()
            elif isinstance(exc.__context__, _OverLimit):
                self._refuse_over_limit()
            elif isinstance(exc.__context__, _UnknownTransferCoding):
                self._refuse(501, "unsupported_transfer_encoding",
                             "a Transfer-Encoding other than chunked is not supported; send "
                             "the body chunked or with a Content-Length",
                             "request transfer coding not supported refused")
            else:
                # llhttp's reason is its own fixed text, never bytes of the request.
                self._refuse(400, "bad_request", "malformed HTTP request",
                             "malformed HTTP request refused", reason=str(exc)[:100])
            return
        if self._phase == _HEAD_GOES_ON:
            self._unfinished_bytes += len(data)
            if self._unfinished_bytes > MAX_HEAD_BYTES:
                self._refuse_head()
        elif self._late_body_ended:
            # Idle, as after an answer: uvicorn's keep-alive timer, which the body's bytes
            # cancelled, is armed again as uvicorn arms it then, but never for longer than
            # the head's deadline that held the connection before. (Not from the parser's
            # callback: a request after the body in this read would have it running.)
            self._late_body_ended = False
            if not self.transport.is_closing():
                self.timeout_keep_alive_task = self.loop.call_later(
                    min(self.timeout_keep_alive, self.deadlines.head_s),
                    self.timeout_keep_alive_handler)
        elif self._phase == _HEAD_BEGUN:
            self._phase = _HEAD_GOES_ON
            # A head in more than one read (a rare one: providers send theirs at once). On a
            # new connection the timer runs since it opened; on a kept-alive one, the byte
            # that began this head cancelled uvicorn's keep-alive timer: from here, then.
            if self._timer is None:
                self._timer = self.loop.call_later(self.deadlines.head_s, self._expired)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = _HEAD_BEGUN
        self._late_body_ended = False
        self._head_bytes = self._unfinished_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._head_bytes += len(url)
        if self._head_bytes > MAX_HEAD_BYTES:
            raise _HeadTooLarge
        self.url += url  # as uvicorn's

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + _HEADER_FRAMING
        if self._head_bytes > MAX_HEAD_BYTES or len(self.headers) >= MAX_HEADERS:
            raise _HeadTooLarge
        # uvicorn's own, inlined: a call more per header cost as much as the count
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100_continue = True
        elif name == b"transfer-encoding" and not _only_chunked(value):
            raise _UnknownTransferCoding
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._phase = _BODY
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # Not a request pipelined behind one still answered on this connection: it waits its
        # turn, adding nothing to what the process does at once.
        limit = self.deadlines.max_connections
        if limit is not None and (self.cycle is None or self.cycle.response_complete) \
                and over_limit(limit, self.server_state, self.url):
            raise _OverLimit
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._phase = _IDLE
        if self._timer is not None:
            # A body that came after its answer: its deadline is met (data_received arms
            # uvicorn's keep-alive timer once this read is parsed).
            self._timer.cancel()
            self._timer = None
            self._late_body_ended = True
        super().on_message_complete()

    def on_response_complete(self) -> None:
        hang_up = self._hang_up_after is not None and self._hang_up_after.response_complete
        if hang_up:
            self._hang_up_after = None
            # A request parsed behind the answer (its body, then the next, came while the
            # answer was written) is not started: its answer could not follow the close
            # announced. The client sends it again on a new connection.
            self.pipeline.clear()
        super().on_response_complete()
        if hang_up:
            if not self.transport.is_closing():
                self._unset_keepalive_if_required()  # just armed by uvicorn: ours is shorter
                self._hang_up()
            return
        if self._phase == _BODY and self._timer is None and self.cycle.response_complete \
                and not self.transport.is_closing():
            # Answered without its body (a 404, a 401 on a header, a 413): the rest is read
            # and dropped so the connection can serve the next request, but not for ever.
            # (Not a pipelined request's body, the app's to read: self.cycle is that one's.)
            self._timer = self.loop.call_later(self.deadlines.body_s, self._expired)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: ASGI3Application) -> None:
        self._answering = cycle  # self.cycle is the latest head's, queued behind this one
        if not cycle.keep_alive:  # the client's `connection: close`, or HTTP/1.0
            app = lingering_if_unread(cycle, app, self._hang_up_after_answer)
        if cycle.waiting_for_100_continue:  # rare: curl's bodies over 1 MiB, some clients'
            app = closing_unless_continued(cycle, app, self._hang_up_after_answer)
        super()._start_asgi_task(cycle, app)

    def _hang_up_after_answer(self, cycle: RequestResponseCycle) -> None:
        self._hang_up_after = cycle

    def _expired(self) -> None:
        self._timer = None
        if self._hung_up or self.transport.is_closing():
            return
        if self._phase == _IDLE:
            self.transport.close()  # nothing of a request came: nothing to answer
        elif self._phase != _BODY:
            head_s = self.deadlines.head_s
            if self.flow.read_paused:
                # uvicorn stopped reading (a pipelined request waits behind one the app still
                # answers): the rest of this head may wait in the socket, unread by us. Looked
                # at again a deadline later; what waits is read at once when reading resumes.
                self._timer = self.loop.call_later(head_s, self._expired)
                return
            self._refuse(408, "request_timeout",
                         f"the request's URL and headers did not arrive within {head_s:g} s",
                         "request headers too slow refused", timeout_s=head_s)
        elif self.cycle.response_complete:
            # The answer went long ago; the body is nobody's. A client that keeps sending
            # such bodies holds a connection each time: counted, and logged once a minute.
            metrics.UNREAD_BODIES.inc()
            self.refusals(logging.WARNING, "unread body still arriving, connection closed", {},
                          client=self._client(), timeout_s=self.deadlines.body_s)
            self.transport.close()
        # else the app reads this body, under its own deadline (a webhook's: 408 body_timeout)
