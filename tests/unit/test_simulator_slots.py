"""The simulator's shared webhook connections (for URLs sends named, on origins other than
ingest's) are split among the origins being sent to, and waiting for one is bounded.

Four origins that never answered each held their 8 of the 32 shared connections, and a fifth
origin's webhooks waited for as long as those held them (10 s a try, 4 tries). A webhook waiting
for a connection had no time limit of its own: behind a silent origin a job waited without end.
Real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator

import pytest

from simulator.base import Bucket, Webhook
from simulator.posting import (
    FOREIGN_CONNECTIONS,
    ORIGIN_SHARE,
    ConnectionsBusy,
    SharedConnections,
)
from simulator.webhooks import Job, RetryPolicy
from switchboard.accounts import parse_accounts
from tests.polling import until
from tests.unit.webhook_servers import Seen, answering, dispatching, silent

ACCOUNTS = parse_accounts({"accounts": {"plain": {
    "provider": "ubiqio", "auth": {"scheme": "token", "secrets": ["plain-webhook-token"]}}}})
ACCOUNT = ACCOUNTS.get("ubiqio", "plain")
RETRY = RetryPolicy(attempts=1, timeout_s=120)  # no try to a silent URL ends in a test
SILENT_ORIGINS = FOREIGN_CONNECTIONS // ORIGIN_SHARE  # their full shares took every connection
BUCKET = Bucket("reports", max_reports=10, max_wait_s=0.02,
                merge=lambda bodies: b"[" + b",".join(bodies) + b"]")


def _job(url: str, index: int, hooks: int = 1, bucket: Bucket | None = None) -> Job:
    assert ACCOUNT is not None
    webhooks = tuple(Webhook("status:sent", b'{"n": %d}' % index, bucket=bucket)
                     for _ in range(hooks))
    return Job("ubiqio", ACCOUNT, webhooks, 0.0, url=f"{url}/notify/{index}", signed=False)


@contextlib.asynccontextmanager
async def _silent_origins(count: int) -> AsyncIterator[list[tuple[str, Seen]]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(silent()) for _ in range(count)]


async def test_a_healthy_origin_progresses_while_silent_ones_hold_their_share() -> None:
    async with (
        _silent_origins(SILENT_ORIGINS) as dead,
        answering() as (healthy_url, healthy),
        answering() as (ingest_url, _),
        dispatching(ingest_url, retry=RETRY) as dispatcher,
    ):
        for url, _ in dead:  # more each than a share: some of each wait for a connection
            for index in range(ORIGIN_SHARE + 4):
                dispatcher.enqueue(_job(url, index))
        assert await until(lambda: all(seen.connections for _, seen in dead))
        await asyncio.sleep(0.3)  # let them take what they may
        for index in range(5):
            dispatcher.enqueue(_job(healthy_url, index))
        assert await until(lambda: len(healthy.requests) == 5, 5), "the healthy origin waited"
        # Counted once its answer is read, a moment after the origin saw the request.
        assert await until(lambda: dispatcher.stats.sent == 5, 5), dispatcher.stats
        held = sum(seen.connections for _, seen in dead)
        assert 0 < held < FOREIGN_CONNECTIONS  # room was left for one more origin
        assert all(seen.connections <= ORIGIN_SHARE for _, seen in dead)


async def test_a_job_that_gets_no_connection_in_time_is_dropped_and_counted(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    waiting = 4
    async with (
        silent() as (dead_url, dead),
        answering() as (ingest_url, ingest),
        dispatching(ingest_url, retry=RETRY, connection_wait_s=0.5) as dispatcher,
    ):
        for index in range(ORIGIN_SHARE + waiting):  # two webhooks each
            dispatcher.enqueue(_job(dead_url, index, hooks=2))
        assert await until(lambda: dispatcher.stats.failed == waiting * 2, 8), \
            "jobs waited for a connection without end"
        assert dispatcher.stats.connections_busy == waiting * 2
        assert dispatcher.to_dict()["connections_busy"] == waiting * 2
        # A dropped job leaves `pending` as its task ends, a loop turn after it counts its
        # webhooks failed: those holding a connection still try.
        assert await until(lambda: dispatcher.pending == ORIGIN_SHARE)
        assert dead.connections == ORIGIN_SHARE
        assert ACCOUNT is not None  # ingest's webhooks have connections of their own
        dispatcher.enqueue(Job("ubiqio", ACCOUNT, (Webhook("status:sent", b"{}"),), 0.0))
        assert await until(lambda: len(ingest.requests) == 1)
    lines = [record.msg for record in caplog.records if isinstance(record.msg, dict)
             and record.msg["event"].startswith("simulator webhook got no connection")]
    assert lines and lines[0]["connection_wait_s"] == 0.5
    assert dead_url not in str(lines)  # a URL a send named may carry credentials


async def test_bucketed_reports_that_get_no_connection_in_time_are_dropped() -> None:
    """A bucket's request that gets no connection fails each of its reports' jobs: their later
    webhooks would wait behind the same origin again."""
    async with (
        silent() as (dead_url, dead),
        dispatching(None, retry=RETRY, connection_wait_s=0.5) as dispatcher,
    ):
        for index in range(ORIGIN_SHARE):  # a URL per job: a lane and a request of its own
            dispatcher.enqueue(_job(dead_url, index, bucket=BUCKET))
        assert await until(lambda: dead.connections == ORIGIN_SHARE)
        for _ in range(3):  # one lane and request for the three, two reports each
            dispatcher.enqueue(_job(dead_url, ORIGIN_SHARE, hooks=2, bucket=BUCKET))
        assert await until(lambda: dispatcher.stats.failed == 6, 8)
        assert dispatcher.stats.connections_busy == 6
        assert await until(lambda: dispatcher.pending == ORIGIN_SHARE)  # as above


async def test_stop_finishes_with_jobs_waiting_for_a_connection() -> None:
    async with silent() as (dead_url, dead):
        async with dispatching(None, retry=RETRY) as dispatcher:
            for index in range(ORIGIN_SHARE * 4):
                dispatcher.enqueue(_job(dead_url, index))
            assert await until(lambda: dead.connections == ORIGIN_SHARE)
            await asyncio.wait_for(dispatcher.stop(), 10)
        assert dispatcher.pending == 0
        assert dispatcher.stats.failed == 0  # cancelled by the stop, not dropped


async def test_a_connection_given_to_a_waiter_as_it_gives_up_goes_to_the_next() -> None:
    """Freed while the waiter it went to was being cancelled (a stop, or the wait's end): kept
    by no one, it was lost to every later request."""
    slots = SharedConnections(size=1, most=1)

    async def hold(key: str) -> None:
        async with slots.held(key, wait_s=30):
            await asyncio.Event().wait()

    async with slots.held("http://a", wait_s=30):
        second = asyncio.create_task(hold("http://b"))
        await asyncio.sleep(0.05)  # waiting for the one connection
    second.cancel()  # given the connection as it was freed, and cancelled before it ran
    with pytest.raises(asyncio.CancelledError):
        await second
    assert (slots.free, slots.origins) == (1, 0)
    async with slots.held("http://c", wait_s=1):  # would wait its whole second and fail
        assert slots.free == 0


async def test_an_origin_past_its_share_waits_while_another_takes_the_freed_connection() -> (
        None):
    """Connections freed go round the origins waiting, in turn, each up to its share: 32 divided
    by one more than the origins being sent to, at most 8."""
    slots = SharedConnections(size=4, most=4)
    release = asyncio.Event()
    order: list[str] = []

    async def hold(key: str) -> None:
        async with slots.held(key, wait_s=30):
            order.append(key)
            await release.wait()

    tasks = [asyncio.create_task(hold("http://a")) for _ in range(4)]
    await asyncio.sleep(0.05)
    assert order == ["http://a"] * 2  # a share of 4 // (1 + 1)
    tasks.append(asyncio.create_task(hold("http://b")))
    await asyncio.sleep(0.05)
    assert order[2:] == ["http://b"]  # room was left for it
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert (slots.free, slots.origins) == (4, 0)



async def test_connections_freed_go_round_the_origins_waiting() -> None:
    """Twelve silent origins: the first come hold all 32 connections, the others' requests
    wait. A healthy origin's webhooks then go out with the first connections freed (their
    tries end, 2 s), each origin up to its share, not after every silent request that waited
    before them (64 more, 2 s each)."""
    async with (
        _silent_origins(SILENT_ORIGINS * 3) as dead,
        answering() as (healthy_url, healthy),
        dispatching(None, retry=RetryPolicy(attempts=1, timeout_s=2)) as dispatcher,
    ):
        for url, _ in dead:
            for index in range(ORIGIN_SHARE + 4):
                dispatcher.enqueue(_job(url, index))
        assert await until(lambda: sum(seen.connections for _, seen in dead)
                           == FOREIGN_CONNECTIONS)
        for index in range(5):
            dispatcher.enqueue(_job(healthy_url, index))
        assert await until(lambda: len(healthy.requests) == 5), "the healthy origin waited"
        # The 32 first taken and at most the 32 they freed: first come first served gave the
        # healthy origin its first after every silent request that came before it (144).
        assert sum(seen.connections for _, seen in dead) <= 2 * FOREIGN_CONNECTIONS


async def test_a_backlog_behind_an_origin_that_answers_is_sent_not_dropped() -> None:
    """The wait bounds a request behind an origin that makes no progress, not a queue behind
    one that answers: 120 jobs to an origin answering in 0.3 s, 8 at a time, take some 4.5 s,
    and those queued last waited past connection_wait_s (1.5 s), their origin answering all
    along. They were dropped as connections_busy."""
    jobs = 120
    async with (
        answering(delay_s=0.3) as (slow_url, slow),
        dispatching(None, retry=RETRY, connection_wait_s=1.5) as dispatcher,
    ):
        for index in range(jobs):
            dispatcher.enqueue(_job(slow_url, index))
        assert await until(lambda: dispatcher.stats.sent + dispatcher.stats.failed == jobs, 30)
        assert dispatcher.stats.connections_busy == 0
        assert dispatcher.stats.sent == jobs == len(slow.requests)


@pytest.mark.parametrize("seed", range(60))
async def test_origins_coming_and_going_with_cancels_and_waits_ending(seed: int) -> None:
    """Seeded load on the slots alone: requests to up to a dozen origins, some failing, some waits
    ending, some tasks cancelled at any point. No connection is ever left idle while an origin
    below its share waits, at most `size` are held, and every one is back at the end."""
    rng = random.Random(seed)
    size, most = rng.choice([(1, 1), (4, 4), (5, 2), (9, 4), (16, 8), (32, 8)])
    origins = rng.choice([2, 5, 12])
    slots = SharedConnections(size, most)
    holding = [0]
    idle_while_waiting: list[tuple[str, int, int]] = []

    async def request(key: str) -> None:
        with contextlib.suppress(ConnectionsBusy, OSError):
            async with slots.held(key, rng.choice([0.01, 0.05, 5.0])):
                holding[0] += 1
                try:
                    assert holding[0] <= size
                    await asyncio.sleep(rng.choice([0, 0.001, 0.01]))
                    if rng.random() < 0.3:
                        raise OSError("no answer")
                finally:
                    holding[0] -= 1

    async def watch() -> None:
        while True:
            share = slots.share()
            idle_while_waiting.extend(
                (key, entry.held, share) for key, entry in slots._origins.items()
                if slots.free and entry.held < share
                and any(not waiter.done() for waiter in entry.waiting))
            await asyncio.sleep(0)

    watcher = asyncio.create_task(watch())
    tasks: list[asyncio.Task[None]] = []
    for _ in range(rng.randint(20, 120)):
        tasks.append(asyncio.create_task(request(f"http://o{rng.randrange(origins)}")))
        if rng.random() < 0.3:
            await asyncio.sleep(rng.choice([0, 0.002]))
        if rng.random() < 0.15:
            rng.choice(tasks).cancel()
    for _ in range(rng.randint(0, 20)):  # and while connections are being freed and given
        await asyncio.sleep(rng.choice([0, 0.001]))
        rng.choice(tasks).cancel()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
    watcher.cancel()
    assert not idle_while_waiting
    assert (slots.free, slots.origins, holding[0]) == (size, 0, 0)
