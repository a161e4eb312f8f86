"""One round trip of DurableProducer: the records of concurrent `publish` calls handed to Kafka
together, and how each caller learns its outcome from the batches' futures.

Kept apart from the producer, which decides when a round trip goes and what a failure means
for its client, so that both stay readable."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
    UnsupportedForMessageFormatError,
)


class PublishError(Exception):
    """Kafka did not acknowledge in time; nothing may be reported as stored.

    `lasting`: Kafka refused the records for what they are (too large, malformed) and would
    again. Every other failure (Kafka away or slow, a leader moving, the client being
    replaced, access not granted yet) passes once Kafka or its settings are back: a worker
    waits those out instead of spending a record's attempts on them."""

    def __init__(self, reason: str, *, lasting: bool = False) -> None:
        super().__init__(reason)
        self.lasting = lasting


# What the broker says of a batch itself: sending it again would be refused again.
REFUSED_FOR_GOOD = (
    RecordTooLargeError, MessageSizeTooLargeError, RecordListTooLargeError,
    CorruptRecordException, InvalidTimestampError, UnsupportedForMessageFormatError,
)

# A topic (as the cluster names it) and one of its partitions.
Partition = tuple[str, int]
# A batch handed to the client, by its partition, and what the client said of it.
Sent = list[tuple[Partition, asyncio.Future[Any]]]


class Group:
    """Records handed over together; each waiter learns its outcome (None: stored), with the
    partitions its records went to."""

    __slots__ = ("batches", "sent_at", "size", "stored_any", "timer", "waiters")

    def __init__(self) -> None:
        self.batches: dict[Partition, list[Any]] = {}
        self.waiters: list[tuple[asyncio.Future[PublishError | None], list[Partition]]] = []
        self.size = 0
        self.timer: asyncio.TimerHandle | None = None
        self.stored_any = False  # whether Kafka acknowledged any of its batches
        self.sent_at: float | None = None  # when its first batch was handed to the client

    def finish(self, failure: PublishError | None,
               refused: dict[Partition, PublishError] | None = None) -> None:
        """With `refused`, only a caller with a record in one of those partitions fails (with
        that partition's error): Kafka stored the others'. Otherwise each gets `failure`."""
        if self.timer is not None:
            self.timer.cancel()
        for waiter, written in self.waiters:
            if waiter.done():  # cancelled (it stopped listening), or answered by `settle`
                continue
            if refused is None:
                waiter.set_result(failure)
            else:
                waiter.set_result(next((refused[p] for p in written if p in refused), None))
        self.waiters.clear()

    def settle(self, ended: set[Partition], refused: dict[Partition, PublishError]) -> None:
        """Answer now each caller whose partitions' batches have all ended; the others wait."""
        for waiter, written in self.waiters:
            if not waiter.done() and all(p in ended for p in written):
                waiter.set_result(next((refused[p] for p in written if p in refused), None))


def not_acknowledged(timeout_s: float) -> PublishError:
    """What a caller is told when Kafka did not answer for its records in time."""
    return PublishError(f"Kafka did not acknowledge within {timeout_s}s")


# Why records of a partition whose earlier batch Kafka has not answered are refused (stuck).
BEHIND_UNANSWERED = ("Kafka has not answered for earlier records of the same partition; "
                     "not queueing behind them")


def refused_partitions(sent: Sent) -> dict[Partition, PublishError]:
    """The partitions of the batches that have failed so far, with the first error of each."""
    refused: dict[Partition, PublishError] = {}
    for partition, future in sent:
        if partition not in refused and future.done() and not future.cancelled() \
                and (exc := future.exception()) is not None:
            refused[partition] = PublishError(f"Kafka refused the records: {exc!r}",
                                              lasting=isinstance(exc, REFUSED_FOR_GOOD))
    return refused


def unstored_partitions(sent: Sent, timeout_s: float) -> dict[Partition, PublishError]:
    """The partitions of which some batch was not acknowledged: refused, or not answered (still
    out, or given up when its client was stopped)."""
    unstored = refused_partitions(sent)
    for partition, future in sent:
        if partition not in unstored and (not future.done() or future.cancelled()):
            unstored[partition] = not_acknowledged(timeout_s)
    return unstored


def stored_any(futures: list[asyncio.Future[Any]]) -> bool:
    """Whether Kafka has acknowledged any of these batches yet."""
    return any(f.done() and not f.cancelled() and f.exception() is None for f in futures)


def failed_any(futures: list[asyncio.Future[Any]]) -> bool:
    """Whether the client refused or dropped any of these batches: see spent_a_sequence."""
    return any(f.done() and not f.cancelled() and f.exception() is not None for f in futures)
