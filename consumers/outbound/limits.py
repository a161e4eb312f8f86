"""What holds a provider call back, set by the sender around each send: the account's rate
limit (TokenBucket), a wait the provider asked of another of its sends (HELD_FOR, Held), the
worker winding down (WINDING_DOWN, Stopping); and how far the call has gone (SEND_PROGRESS),
for the sender to tell a call cut short before its send request left."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar

from consumers.handling import slot_given_up
from consumers.outbound.base import SendError

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
