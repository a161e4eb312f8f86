"""What holds a provider call back, set by the sender around each send: the account's rate
limit (TokenBucket), the room its provider's origin has for requests in flight (ORIGIN_ROOMS;
room_for, a token request's), a wait the provider asked of another of its sends (HELD_FOR,
Held), the worker winding down (WINDING_DOWN, Stopping); and how far the call has gone
(SEND_PROGRESS), for the sender to tell a call cut short before its send request left."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Literal

from consumers.handling import slot_given_up
from consumers.outbound.base import SendError
from consumers.outbound.http_errors import origin_of

# Set by the sender to its worker's winding-down event around a send: a request still waiting
# for the rate limit is then not made (a SendError before the provider is called), so the
# command is handed back unsent instead of being sent while the worker stops.
WINDING_DOWN: ContextVar[asyncio.Event | None] = ContextVar("winding_down", default=None)


class SendProgress:
    """How far one provider call has gone: whether a send request of it has left and is not
    answered yet (`awaiting_answer`). A call cut short while none is, say while a Ubiqio token
    request is in flight, has given the provider no message: the sender hands it back unsent
    rather than reporting its outcome unknown."""

    __slots__ = ("awaiting_answer", "before_request")

    def __init__(self, before_request: Callable[[], Awaitable[None]] | None = None) -> None:
        self.awaiting_answer = False
        # Awaited once the rate limit lets a send request go, before it leaves: the sender
        # marks the command pending there, so a crash while it waited for the rate limit
        # leaves it unsent for the next sender rather than outcome_unknown.
        self.before_request = before_request


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


class OriginRoom:
    """Room for requests in flight to one origin (scheme, host, port), send and token requests
    alike, shared by every account sending there: a provider that stops answering holds this
    many of the sender's concurrency slots until its requests time out, not all of them."""

    def __init__(self, size: int) -> None:
        self._free = asyncio.Semaphore(size)

    async def take(self) -> None:
        """Stopping (a SendError: not called, retryable) if the worker winds down first."""
        stopping = WINDING_DOWN.get()
        if stopping is not None and stopping.is_set():
            raise Stopping()
        if stopping is None or not self._free.locked():
            await self._free.acquire()  # at once when there is room
            return
        taking = asyncio.ensure_future(self._free.acquire())
        watching = asyncio.ensure_future(stopping.wait())
        try:
            await asyncio.wait((taking, watching), return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled: the room is nobody's
            self._undo(taking)
            raise
        finally:
            watching.cancel()
        if stopping.is_set():  # also with room taken just then: this send is not made
            self._undo(taking)
            raise Stopping()

    def give(self) -> None:
        self._free.release()

    def _undo(self, taking: asyncio.Task[Literal[True]]) -> None:
        if not taking.done():
            taking.cancel()
        elif not taking.cancelled() and taking.exception() is None:
            self._free.release()


class OriginRooms:
    """Each origin's OriginRoom, made as its first send needs it: origins are the accounts'
    few base_urls."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._rooms: dict[str, OriginRoom] = {}

    def of(self, url: str) -> OriginRoom:
        origin = origin_of(url)
        room = self._rooms.get(origin)
        if room is None:
            room = self._rooms[origin] = OriginRoom(self.size)
        return room


# Set by the sender around a send: the rooms of the origins it sends to. None outside the
# sender (a send made by a test or a tool): no cap.
ORIGIN_ROOMS: ContextVar[OriginRooms | None] = ContextVar("origin_rooms", default=None)


@contextlib.asynccontextmanager
async def room_for(url: str) -> AsyncIterator[None]:
    """A place in the room of `url`'s origin for one request that is not a send (a Ubiqio
    token request), given back on every way out; waited for with the record's concurrency slot
    given up, as a send waits for room. Send requests take theirs with their rate-limit token
    (TokenBucket.acquire). Stopping if the worker winds down first.

    Its caller must hold no room: a request waiting for room while holding some could wait
    for itself (a room of 1)."""
    rooms = ORIGIN_ROOMS.get()
    if rooms is None:
        yield
        return
    room, taken = rooms.of(url), False
    try:
        async with slot_given_up():
            await room.take()
            taken = True
        yield
    finally:  # also when cancelled taking the slot again, the room taken
        if taken:
            room.give()


class TokenBucket:
    """Per-account rate limit: waits until a token is available instead of failing."""

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self.rate = rate_per_s
        self.capacity = float(burst)
        self.tokens = float(burst)
        self.updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self, room: OriginRoom | None = None) -> None:
        """Stopping (a SendError: not called, retryable) if the worker winds down first.
        The record's concurrency slot is another's while this waits (slot_given_up): an
        account's backlog behind its rate limit must not hold up the other accounts.

        With `room`, a place in it is taken too (the caller gives it back), after the token.
        An account at its rate limit waits for room in its turn (the bucket's lock), so its
        backlog waits one send at a time, holding no room another account's sends there could
        use, and its tokens are taken at most one send ahead of the requests that leave: a
        provider that hung and recovers is not sent, at once, every token taken meanwhile. One
        with tokens to spare waits out of turn, its next sends with it (at most its burst ahead,
        as the bucket allows after a quiet spell): waiting in turn, one send woken per answer,
        cost a host saturated by its sends a fifth more CPU per send (some 7 % out of turn).
        """
        taken = False
        try:
            # The lock given back before the slot is taken again: the account's next send
            # goes on waiting meanwhile.
            async with slot_given_up():
                async with self._lock:
                    await self._take_token()
                    if room is not None and self.tokens < 1:  # at its rate limit
                        await room.take()
                        taken = True
                if room is not None and not taken:
                    await room.take()
                    taken = True
        except BaseException:  # also while the slot is taken again: the room is nobody's
            if taken and room is not None:
                room.give()
            raise

    async def _take_token(self) -> None:
        stopping = WINDING_DOWN.get()
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
