"""Concurrency slots, without a broker: a record that only waits (a backoff, a provider's
Retry-After, its rate limit) gives its slot to another record, so one account held back by its
provider does not hold up every other account's records."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from aiokafka import TopicPartition

from consumers.handling import Context as HandlerContext
from consumers.handling import GiveBack, Record, slot_given_up
from consumers.outbound.limits import WINDING_DOWN, Stopping, TokenBucket
from consumers.runtime import WorkerRuntime
from tests.fakes import KeepingProducer

TP = TopicPartition("switchboard.outbound.command.v1", 0)


def _record(offset: int, key: bytes) -> SimpleNamespace:
    return SimpleNamespace(topic=TP.topic, partition=0, offset=offset, key=key, value=b"{}",
                           headers=())


def _runtime(handler: object, *, max_concurrency: int) -> WorkerRuntime:
    return WorkerRuntime(name="test", kafka="unused:9092", topics=[TP.topic],
                         handler=handler,  # type: ignore[arg-type]
                         producer=KeepingProducer(),  # type: ignore[arg-type]
                         max_concurrency=max_concurrency)


async def test_records_waiting_to_retry_leave_their_slots_to_other_records() -> None:
    """Every slot was held by records of one account waiting out its provider's Retry-After:
    another account's record, ready to go, waited for all of them (80 s measured behind 40
    commands asked to wait 10 s)."""
    waiting: set[bytes] = set()
    both_waiting, other_done = asyncio.Event(), asyncio.Event()
    done: list[bytes] = []

    async def handler(record: Record, ctx: HandlerContext) -> None:
        key = record.key or b""
        if key.startswith(b"held"):
            waiting.add(key)
            if len(waiting) == 2:
                both_waiting.set()
            await ctx.wait_to_retry(30)  # the provider said: come back in 30 s
        done.append(key)
        other_done.set()

    runtime = _runtime(handler, max_concurrency=2)
    await runtime._dispatch({TP: [_record(0, b"held-1"), _record(1, b"held-2"),
                                  _record(2, b"other")]})
    runtime_tasks = list(runtime._tasks)
    await asyncio.wait_for(both_waiting.wait(), 5)
    await asyncio.wait_for(other_done.wait(), 5)
    runtime.context.winding_down.set()  # the stop gives the waiting records back
    await asyncio.wait_for(asyncio.gather(*runtime_tasks), 5)
    assert done == [b"other"]
    assert runtime._concurrency._value == 2  # every slot given back exactly once


async def test_a_record_waiting_for_its_account_rate_limit_leaves_its_slot() -> None:
    """The sender waits for an account's token bucket inside its handler; with the slot held,
    a backlog of one rate-limited account filled every slot (13.7 s measured for another
    account's command queued behind 100 at 5/s)."""
    bucket = TokenBucket(rate_per_s=0.01, burst=1)  # the second token after 100 s
    done: list[bytes] = []
    other_done = asyncio.Event()

    async def handler(record: Record, ctx: HandlerContext) -> None:
        WINDING_DOWN.set(ctx.winding_down)
        if record.key in (b"limited-1", b"limited-2", b"limited-3"):
            try:
                await bucket.acquire()
            except Stopping:
                raise GiveBack from None
        done.append(record.key or b"")
        if record.key == b"other":
            other_done.set()

    runtime = _runtime(handler, max_concurrency=1)
    await runtime._dispatch({TP: [_record(0, b"limited-1"), _record(1, b"limited-2"),
                                  _record(2, b"limited-3"), _record(3, b"other")]})
    runtime_tasks = list(runtime._tasks)
    await asyncio.wait_for(other_done.wait(), 5)
    assert done == [b"limited-1", b"other"]  # the others still wait for their tokens
    runtime.context.winding_down.set()
    await asyncio.wait_for(asyncio.gather(*runtime_tasks), 5)
    assert runtime._concurrency._value == 1


async def test_a_record_failing_after_a_wait_takes_a_slot_again_before_its_next_attempt() -> None:
    """A wait the handler leaves by an error (not GiveBack) gives no slot back: the runtime
    takes one before trying the record again, so no more than max_concurrency run at once."""
    running = 0
    most = 0
    attempts: dict[bytes, int] = {}

    async def handler(record: Record, ctx: HandlerContext) -> None:
        nonlocal running, most
        key = record.key or b""
        attempts[key] = attempts.get(key, 0) + 1
        running += 1
        most = max(most, running)
        try:
            await asyncio.sleep(0.01)
            if attempts[key] == 1:
                running -= 1
                async with slot_given_up():  # a wait that ends in an error: no slot again
                    await asyncio.sleep(0.01)
                    running += 1  # counted back for the finally below
                    raise RuntimeError("the wait failed")
        finally:
            running -= 1

    runtime = _runtime(handler, max_concurrency=2)
    runtime.retry.base_delay_s = 0.01
    await runtime._dispatch({TP: [_record(i, f"k{i}".encode()) for i in range(8)]})
    await asyncio.wait_for(asyncio.gather(*list(runtime._tasks)), 10)
    assert attempts == {f"k{i}".encode(): 2 for i in range(8)}
    assert most == 2
    assert runtime._concurrency._value == 2

