"""How ingest's HTTP protocol (ingest.protocol) refuses a request itself, below the app: the
bounds of a request's head it refuses past, the JSON error it writes by hand (as every other
refusal ingest gives is JSON, where uvicorn's were plain text), and the connection hung up on
after it, reading and dropping what the client still sends for LINGER_S so the answer is not
lost to a reset. Kept apart from ingest.protocol, which is uvicorn's parsing and timers with
its few additions, and decides when to refuse.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from ingest import metrics
from ingest.limits import OVER_LIMIT_RETRY_AFTER_S, Deadlines, left
from switchboard.probes import error_body
from switchboard.throttle import ThrottledLog

# nginx's default (large_client_header_buffers) is 32 KB, h11's 16 KiB: a provider's webhook
# has a few kilobytes at most, signatures and tokens included.
MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 100  # Apache's LimitRequestFields
# After a refusal, what the client still sends is read and dropped for this long before the
# connection is closed: closed at once with its bytes unread, the client got a reset, often
# in place of the answer (the rest of its headers, its body, were still on their way).
LINGER_S = 2.0


class RefusingProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with ingest's refusals and hang-up; IngestProtocol, which
    keeps the rest of the state these read, is the one served."""

    refusals: ThrottledLog
    deadlines: Deadlines
    _timer: asyncio.TimerHandle | None
    _answering: RequestResponseCycle | None
    _hung_up = False  # no more requests are read: after a refusal, or an unasked-for body
    _leaving = False  # hung up and still open: not counted against the connection limit

    def _refuse_head(self) -> None:
        self._refuse(431, "headers_too_large",
                     f"the request's URL and headers are over {MAX_HEAD_BYTES} bytes or "
                     f"{MAX_HEADERS} headers", "request headers too large refused",
                     limit_bytes=MAX_HEAD_BYTES, limit_headers=MAX_HEADERS)

    def _refuse_over_limit(self) -> None:
        limit = self.deadlines.max_connections
        self._refuse(503, "over_capacity",
                     f"this server is at its limit of connections ({limit}); retry later",
                     "request over the connection limit refused",
                     retry_after_s=OVER_LIMIT_RETRY_AFTER_S, limit=limit,
                     connections=len(self.connections), requests=len(self.tasks))

    def _refuse(self, status: int, code: str, message: str, event: str,
                retry_after_s: int | None = None, **fields: object) -> None:
        metrics.count_request("unknown", "unknown", code)
        self.refusals(logging.WARNING, event, {"status": status}, client=self._client(),
                      **fields)
        body = orjson.dumps(error_body(code, message))
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        if retry_after_s is not None:
            content.append(b"retry-after: %d\r\n" % retry_after_s)
        content.extend([b"content-type: application/json\r\n",
                        b"content-length: %d\r\n" % len(body),
                        b"connection: close\r\n\r\n", body])
        self.transport.write(b"".join(content))
        # As a lost connection does (uvicorn's connection_lost): a request still in flight
        # here, or queued behind it, answers nowhere (its app's write would have raised).
        self.pipeline.clear()
        for cycle in {self.cycle, self._answering}:
            if cycle is not None and not cycle.response_complete:
                cycle.disconnected = True  # its answer is not written after our end
                cycle.message_event.set()
        self._hang_up()

    def _client(self) -> str | None:
        return f"{self.client[0]}:{self.client[1]}" if self.client else None

    def _hang_up(self) -> None:
        """Read no more requests, and close once what the client still sends has been read and
        dropped for LINGER_S: closed at once, its unread bytes get the client a reset."""
        self._hung_up = True
        if not self._leaving and not self.transport.is_closing():
            self._leaving = True
            left(self.server_state, 1)
        if self._timer is not None:  # a head's or an unread body's: nothing is read now
            self._timer.cancel()
            self._timer = None
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()  # the client reads the answer, then its end: it hangs up
        # As the connection's timer, which connection_lost cancels: left pending, it held the
        # ended connection's transport LINGER_S after a client that hung up at once (most do).
        self._timer = self.loop.call_later(LINGER_S, self.transport.close)
