"""A record's attempts (WorkerRuntime's part): its handler run under the time limit, retried
with backoff, and after `max_attempts` its dead letter published; a failure for want of Kafka
spends no attempt. Kept apart from the runtime's fetching and committing, which only see how a
record ended: handled or dead-lettered, given back (GiveBack), or raising, which stops the
worker short of it."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from prometheus_client import Counter, Histogram

from consumers.handling import (
    HANDLER_TIMEOUT,
    SLOT,
    Context,
    GiveBack,
    Handler,
    MustNotSkip,
    PoisonRecord,
    Record,
    RetryLater,
    event_id_of,
)
from consumers.worker_metrics import HANDLED, HANDLER_FAILURE_SECONDS
from switchboard.clients import KafkaConnection
from switchboard.failure_text import traceback_without_text
from switchboard.logs import get_logger
from switchboard.producer import DurableProducer, PublishError
from switchboard.records import dead_letter_record, named_by_source, short
from switchboard.tasklog import task_fields
from switchboard.throttle import Lazy, ThrottledLog

log = get_logger("consumers.runtime")  # the worker's lines, under the logger they always had


@dataclass
class RetryPolicy:
    """How often a failing record is tried, and how long apart, before its dead letter."""

    max_attempts: int = 5
    base_delay_s: float = 0.2
    max_delay_s: float = 10.0

    def delay(self, attempt: int, hint: float | None = None) -> float:
        # A hint that is no wait (NaN, negative: a parsed header) would retry at once.
        if hint is not None and hint >= 0:
            return min(hint, self.max_delay_s * 6)
        # The exponent capped: a record waiting out a long Kafka outage counts its failures
        # into the thousands, and 2 ** 1024 is past what a float holds (OverflowError).
        delay: float = min(self.base_delay_s * 2 ** min(attempt - 1, 64), self.max_delay_s)
        return delay


def _kafka_away(exc: BaseException) -> PublishError | None:
    """The publish that failed for want of Kafka taking it, if that is why a handler failed
    (also through a failure raised from that one, as a bot's MustNotSkip), not for what the
    record is."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, PublishError):
            return None if cause.lasting else cause
        cause = cause.__cause__
    return None


def _cancelled_here() -> bool:
    """Whether this task was asked to stop (task.cancel()), as opposed to a handler raising
    CancelledError of its own: awaiting something another task cancelled (a shared request, a
    task of its own), which is a failure of that record like any other."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class Attempts:
    """WorkerRuntime's attempts at one record; the state it reads is the runtime's."""

    name: str
    handler: Handler
    handler_timeout_s: float | None
    retry: RetryPolicy
    context: Context
    producer: DurableProducer
    handled: int
    _connection: KafkaConnection
    _winding_down: asyncio.Event
    _outage_log: ThrottledLog
    _seconds: Histogram
    _ok: Counter

    async def _handle_one(self, record: Record) -> None:
        """Handle the record, retried, else dead-lettered. The lines the handler logs (a
        bot's, the sender's), also from tasks it starts, carry the record's event_id while it
        is handled, as the runtime's own do (switchboard.tasklog)."""
        event_id = event_id_of(record.headers)
        if event_id is None:
            await self._attempts(record)
            return
        with task_fields(event_id=event_id):
            await self._attempts(record)

    async def _attempts(self, record: Record) -> None:
        attempt = failures = 0
        slot = SLOT.get()
        while True:
            attempt += 1
            if slot is not None and not slot.held:  # a wait the handler left with an error
                await slot.take()
            started = time.perf_counter()
            try:
                async with asyncio.timeout(self.handler_timeout_s) as limit:
                    HANDLER_TIMEOUT.set(limit)  # paused while the handler publishes
                    await self.handler(record, self.context)
                self._seconds.observe(time.perf_counter() - started)
                self._ok.inc()
                self.handled += 1
                return
            except PoisonRecord as exc:
                self._failed(started, "poison")
                await self._dead_letter(record, f"undecodable record: {exc}", attempt,
                                        provider=exc.provider, account=exc.account)
                return
            except GiveBack:
                raise
            except (Exception, asyncio.CancelledError) as exc:  # retried, then kept
                if isinstance(exc, asyncio.CancelledError) and _cancelled_here():
                    raise  # the worker itself is being cancelled (Ctrl-C at shutdown)
                hint = exc.delay_s if isinstance(exc, RetryLater) else None
                failures += 1
                publish = _kafka_away(exc)
                kafka_away = publish is not None
                cause = ("kafka_away" if kafka_away else "timeout"
                         if isinstance(exc, TimeoutError) and limit.expired() else "error")
                self._failed(started, cause)
                if kafka_away:
                    # No attempt could succeed while Kafka takes nothing: an outage spends
                    # none, or a broker restart would dead-letter every record it caught.
                    attempt -= 1
                elif attempt >= self.retry.max_attempts:
                    if isinstance(exc, MustNotSkip):
                        raise  # _run_in_order stops the worker short of this record
                    detail = str(exc) or (f"no answer within {self.handler_timeout_s}s"
                                          if isinstance(exc, TimeoutError) else
                                          "the handler was cancelled"
                                          if isinstance(exc, asyncio.CancelledError) else "")
                    await self._dead_letter(record, f"{type(exc).__name__}: {detail}", attempt,
                                            failure=exc)
                    return
                if self._winding_down.is_set():
                    raise GiveBack from exc  # retried by whoever handles it next
                HANDLED.labels(self.name, "retry").inc()
                # Throttled: an outage would write a line per record in flight and backoff.
                # What becomes of each record (a dead letter, a stop short of it) is not.
                self._outage_log(logging.WARNING, "handler failed, retrying",
                                 {"worker": self.name, "cause": cause,
                                  "error_type": type(exc).__name__},
                                 attempt=attempt, kafka_away=kafka_away,
                                 # The producer's words (no record's) say why Kafka took
                                 # nothing; another failure is told by type and traceback.
                                 **({"error": repr(publish)} if publish is not None else
                                    {"exception": Lazy(partial(traceback_without_text, exc))}),
                                 **self._where(record))
                # A stop or a rebalance meanwhile gives the record back rather than wait out
                # the delay (a RetryLater hint may be a minute).
                await self.context.wait_to_retry(self.retry.delay(failures, hint))

    def _failed(self, started: float, cause: str) -> None:
        HANDLER_FAILURE_SECONDS.labels(self.name, cause).observe(time.perf_counter() - started)

    def _where(self, record: Record) -> dict[str, Any]:
        """What a log line about one record names it by: where it is in Kafka, and the
        CloudEvents id its producer gave it (an event's id, a command's), if any."""
        where: dict[str, Any] = {"topic": self._connection.topic(record.topic),
                                 "partition": record.partition, "offset": record.offset}
        if (event_id := event_id_of(record.headers)) is not None:
            where["event_id"] = event_id
        return where

    async def _dead_letter(self, record: Record, reason: str, attempts: int, *,
                           provider: str = "", account: str = "",
                           failure: BaseException | None = None) -> None:
        """Publish the record's dead letter, with `reason`. The log line says the reason of a
        poison record (the handler's words for what is wrong with it), and of a `failure`
        only its type and traceback: its text goes to the dead letter alone
        (switchboard.failure_text). It is written once Kafka has the letter, with the letter's
        id (what `switchboard replay --id` takes): a letter Kafka refused, or one given back
        while waiting for Kafka, was logged as dead-lettered with an id no replay could find."""
        if not provider and not account:
            provider, account = named_by_source(record.headers)
        reason = short(reason)  # the log line too: a reason may quote the whole record
        payload = {
            "topic": record.topic, "partition": record.partition, "offset": record.offset,
            "key": record.key.decode("utf-8", "replace") if record.key else None,
            "value_b64": base64.b64encode(record.value).decode(), "attempts": attempts,
            "worker": self.name,
            # For `switchboard replay`, which puts the record back as it was: the key exactly
            # (`key` is for people), and the headers (a header may have no value: null).
            "key_b64": base64.b64encode(record.key).decode() if record.key is not None else None,
            "headers_b64": [[name, None if value is None else base64.b64encode(value).decode()]
                            for name, value in record.headers or ()],
        }
        dead_letter_id = str(uuid.uuid4())
        letter = dead_letter_record(
            dl_id=dead_letter_id, stage=f"worker:{self.name}", reason=reason,
            provider=provider, account=account, time=datetime.now(UTC), payload=payload,
            key=record.key)
        refused = failures = 0
        while True:
            try:
                await self.producer.publish([letter])
                break
            except PublishError as exc:
                # Kafka away: waited out, as a handler's own publish is (a broker restart
                # must not stop every worker holding a record to dead-letter). Refused for
                # good ten times: stop without committing; the record comes back.
                if exc.lasting:
                    refused += 1
                    if refused == 10:
                        raise
                failures += 1
                # A stop or a rebalance gives the record back (GiveBack) rather than wait
                # out the retries: its next owner dead-letters it.
                await self.context.wait_to_retry(self.retry.delay(failures))
        # Counted as it is logged, once Kafka has the letter: counted before publishing, a
        # letter refused for good or given back at a stop also counted as dead-lettered.
        HANDLED.labels(self.name, "dead_letter").inc()
        said: dict[str, Any] = ({"reason": reason} if failure is None else
                                {"error_type": type(failure).__name__,
                                 "exception": traceback_without_text(failure)})
        log.error("record dead-lettered", worker=self.name, dead_letter_id=dead_letter_id,
                  attempts=attempts, **said, **self._where(record))
        self.handled += 1
