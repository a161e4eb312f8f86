"""Answers that come before a request's body is whole, and how its connection ends then.

A request sent with `Expect: 100-continue` that the app answers without asking for its body
(a 401 on a header, a 404, a 413 by its Content-Length), before any of the body came, is
answered `connection: close`, and the connection closed after the answer: the client, never
told to send the body, may send it or its next request instead, and either would be read as
the other (RFC 9110 s10.1.1). One whose client asked to close the connection after it
(`connection: close`, HTTP/1.0), answered before its body is whole, is hung up on, not closed
at once: its unread body would make the close a reset, and the answer lost.

Each wraps the app of one request (ingest.protocol's _start_asgi_task) and tells the protocol,
through `hang_up_after`, that the connection is to be hung up on once that answer is written:
the protocol does it (its on_response_complete), as after any refusal of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

if TYPE_CHECKING:
    from uvicorn._types import (
        ASGI3Application,
        ASGIReceiveCallable,
        ASGISendCallable,
        ASGISendEvent,
        Scope,
    )

_CLOSE = (b"connection", b"close")

HangUpAfter = Callable[[RequestResponseCycle], None]


def lingering_if_unread(cycle: RequestResponseCycle, app: ASGI3Application,
                        hang_up_after: HangUpAfter) -> ASGI3Application:
    """`app`, its connection ended by a hang-up (the client's bytes read and dropped for
    ingest.protocol_refusals.LINGER_S) rather than closed at once when its answer comes
    before the body is whole. uvicorn closed the socket with the body unread: a reset, which
    destroyed the answer in the client's socket before the client read it (a 404, a 401, a
    413 to a client that asked to close after it got nothing)."""

    async def answer(scope: Scope, receive: ASGIReceiveCallable,
                     send: ASGISendCallable) -> None:
        async def send_lingering(message: ASGISendEvent) -> None:
            await send(message)  # uvicorn writes `connection: close` on the start
            if message["type"] == "http.response.start" and cycle.more_body \
                    and not cycle.keep_alive:
                hang_up_after(cycle)
                cycle.keep_alive = True  # not closed at the answer: on_response_complete

        await app(scope, receive, send_lingering)

    return answer


def closing_unless_continued(cycle: RequestResponseCycle, app: ASGI3Application,
                             hang_up_after: HangUpAfter) -> ASGI3Application:
    """`app`, its answer announcing `connection: close` when it comes before the app asked
    for the body (uvicorn sends 100 Continue then) and before any of the body came. A
    client that sent its body without waiting for 100 Continue keeps its connection: once
    a byte of it is here the client is sending it, and the rest is read and dropped as any
    unread body's (a body split over reads, the answer between them, was closed for)."""

    async def answer(scope: Scope, receive: ASGIReceiveCallable,
                     send: ASGISendCallable) -> None:
        async def send_closing(message: ASGISendEvent) -> None:
            if message["type"] != "http.response.start" \
                    or not (cycle.waiting_for_100_continue and cycle.more_body) \
                    or cycle.body:
                await send(message)
                return
            hang_up_after(cycle)
            # In place of any the app gave: a second one (its own close) or a keep-alive.
            headers = [(name, value) for name, value in message.get("headers", ())
                       if name.lower() != b"connection"]
            await send({**message, "headers": [*headers, _CLOSE]})
            # uvicorn would close at once after the answer, with the client's body perhaps
            # unread: a reset that can destroy the answer. on_response_complete ends it.
            cycle.keep_alive = True

        await app(scope, receive, send_closing)

    return answer
