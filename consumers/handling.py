"""What a worker's handler is given, and what it may raise to tell the runtime how a record
went (poison, give back, must not skip, retry later).

Kept apart from the consumer loop in consumers.runtime: handlers (the sender, the bots) and
their tests depend on this contract only, not on the consumer group machinery.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from switchboard.producer import DurableProducer
from switchboard.records import OutRecord


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed record, decoupled from aiokafka's types so handlers are easy to test."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes | None], ...] = ()  # a header may have no value


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
        if records:
            await self.producer.publish(records)

    async def wait_to_retry(self, delay_s: float) -> None:
        """Sleep before the next attempt, or raise GiveBack as soon as the worker winds down:
        a SIGTERM or a rebalance should not wait out a backoff or a provider's Retry-After."""
        try:
            await asyncio.wait_for(self.winding_down.wait(), delay_s)
        except TimeoutError:
            return  # waited the whole delay: try again
        raise GiveBack


Handler = Callable[[Record, Context], Awaitable[None]]
