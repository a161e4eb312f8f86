"""What a worker's handler is given, and what it may raise to tell the runtime how a record
went (poison, give back, must not skip, retry later).

Kept apart from the consumer loop in consumers.runtime: handlers (the sender, the bots) and
their tests depend on this contract only, not on the consumer group machinery.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field

from switchboard.producer import DurableProducer
from switchboard.records import OutRecord, short


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed record, decoupled from aiokafka's types so handlers are easy to test."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes | None], ...] = ()  # a header may have no value


def event_id_of(headers: Sequence[tuple[str, bytes | None]]) -> str | None:
    """The CloudEvents id (`ce_id` header) a record carries, if any: an event's id (as in
    its dead letters and `tail`), a command's id. Bounded: another producer's may be
    anything."""
    for name, value in headers:
        if name == "ce_id" and value is not None:
            return short(value.decode(errors="replace"))
    return None


class PoisonRecord(Exception):
    """The record can never be handled (undecodable): dead-letter it at once, no retries.
    `provider` and `account`, when the record still names them, go into the dead letter so
    it can be found per account."""

    def __init__(self, reason: str, *, provider: str = "", account: str = "") -> None:
        super().__init__(reason)
        self.provider = provider
        self.account = account


class GiveBack(Exception):
    """The handler stopped short of doing anything irreversible because the worker is winding
    down: the record is neither done nor failed, and is not committed."""


class MustNotSkip(Exception):
    """A failure of a record that must never be dead-lettered and skipped (an opt-out): once
    the retries are spent the worker stops without committing it, so it comes back."""


class RetryLater(Exception):
    """A transient failure: retry, after `delay_s` when the cause said how long."""

    def __init__(self, reason: str, delay_s: float | None = None) -> None:
        super().__init__(reason)
        self.delay_s = delay_s


# The runtime's time limit on the handler running in this task (WorkerRuntime sets it);
# publishing does not count against it: see Context.publish.
HANDLER_TIMEOUT: ContextVar[asyncio.Timeout | None] = ContextVar("handler_timeout",
                                                                 default=None)


def _rescheduled(limit: asyncio.Timeout, when: float | None) -> bool:
    """Move the limit; False once its block has ended (a task the handler started may
    publish after the handler returned: the limit is then no longer its to pause)."""
    try:
        limit.reschedule(when)
    except RuntimeError:
        return False
    return True


class Slot:
    """The runtime's leave for one record to run (one of `max_concurrency`), held by the task
    handling it: given up while that record only waits (slot_given_up)."""

    def __init__(self, semaphore: asyncio.Semaphore) -> None:
        self._semaphore = semaphore
        self.held = False

    async def take(self) -> None:
        await self._semaphore.acquire()
        self.held = True

    def give(self) -> None:
        if self.held:
            self.held = False
            self._semaphore.release()


# The slot of the record this task handles (WorkerRuntime sets it).
SLOT: ContextVar[Slot | None] = ContextVar("slot", default=None)


@contextlib.asynccontextmanager
async def slot_given_up() -> AsyncIterator[None]:
    """Wait without holding a concurrency slot: a backoff, a provider's Retry-After or its rate
    limit may last minutes, and records of one account held back by their provider must not
    hold every slot while other accounts' records queue behind them. The slot is taken again
    before the handler goes on; not when the wait ends in an exception (the runtime takes one
    again before any further attempt)."""
    slot = SLOT.get()
    if slot is None or not slot.held:
        yield
        return
    slot.give()
    yield
    await slot.take()


@dataclass
class Context:
    """What a handler may do besides computing: publish records durably (acks=all).

    `winding_down` is set while the worker stops or gives its partitions away: a handler only
    waiting to try again should raise GiveBack rather than wait (the record stays uncommitted
    and comes back, to this worker or the partition's next owner).
    """

    producer: DurableProducer
    worker: str
    winding_down: asyncio.Event = field(default_factory=asyncio.Event)

    async def publish(self, records: Sequence[OutRecord]) -> None:
        """The handler's time limit stops while this waits: the producer bounds a publish
        itself (its own timeout, then PublishError), and a slow Kafka must not end an opt-out
        change as a handler timeout, which would be retried and then dead-lettered."""
        if not records:
            return
        limit = HANDLER_TIMEOUT.get()
        deadline = None if limit is None or limit.expired() else limit.when()
        if limit is None or deadline is None or not _rescheduled(limit, None):
            await self.producer.publish(records)
            return
        loop = asyncio.get_running_loop()
        left = deadline - loop.time()
        try:
            await self.producer.publish(records)
        finally:
            _rescheduled(limit, loop.time() + left)

    async def wait_to_retry(self, delay_s: float) -> None:
        """Sleep before the next attempt, or raise GiveBack as soon as the worker winds down:
        a SIGTERM or a rebalance should not wait out a backoff or a provider's Retry-After.
        The record's concurrency slot is another's meanwhile (slot_given_up). A delay that is
        no wait (0, negative, NaN) tries again at once, a stop still seen: asyncio.wait_for
        given 0 or less times out before the event is looked at, and given NaN never ends."""
        if not delay_s > 0:
            await asyncio.sleep(0)  # others run first, as a wait lets them
            if self.winding_down.is_set():
                raise GiveBack
            return
        async with slot_given_up():
            try:
                await asyncio.wait_for(self.winding_down.wait(), delay_s)
            except TimeoutError:
                return  # waited the whole delay: try again, the slot taken again
            raise GiveBack  # from within: no slot is taken again for a record given back


Handler = Callable[[Record, Context], Awaitable[None]]
