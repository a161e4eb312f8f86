"""A webhook URL a send named (Infobip's notifyUrl, Webex's notifyurl, Ubiqio's statusCallback)
that never answers holds up only its own share of the simulator's connections: webhooks to
ingest, and to other URLs sends named, keep flowing. When all 32 connections were shared, 32
messages to such a URL (10 s a try, 4 tries) stalled every webhook. Real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio

from simulator.base import Webhook
from simulator.posting import ORIGIN_SHARE, POST_CONNECTIONS, Poster
from simulator.webhooks import HOST_QUEUE_SHARE, Job, RetryPolicy
from switchboard.accounts import parse_accounts
from tests.polling import until
from tests.unit.webhook_servers import answering, dispatching, silent

ACCOUNTS = parse_accounts({"accounts": {"plain": {
    "provider": "ubiqio", "auth": {"scheme": "token", "secrets": ["plain-webhook-token"]}}}})
ACCOUNT = ACCOUNTS.get("ubiqio", "plain")
STUCK = POST_CONNECTIONS + 8  # more messages to the silent URL than there are connections
# No try to the silent URL ends while a test runs: each holds its connection throughout.
RETRY = RetryPolicy(attempts=1, timeout_s=120)


def _job(index: int, url: str | None = None) -> Job:
    assert ACCOUNT is not None
    hook = Webhook(kind="status:sent", body=b'{"n": %d}' % index)
    return Job("ubiqio", ACCOUNT, (hook,), 0.0, url=url, signed=url is None)


async def test_a_url_that_never_answers_holds_up_no_webhook_to_ingest() -> None:
    async with (
        answering() as (ingest_url, ingest),
        silent() as (dead_url, dead),
        dispatching(ingest_url, retry=RETRY) as dispatcher,
    ):
        for index in range(STUCK):
            dispatcher.enqueue(_job(index, url=f"{dead_url}/notify/{index}"))
        assert await until(lambda: dead.connections >= ORIGIN_SHARE)
        dispatcher.enqueue(_job(STUCK))  # to the account's ingest URL
        assert await until(lambda: len(ingest.requests) == 1), "ingest's webhook stalled"
        # Counted once its answer is read, after ingest has it: waited for, not raced.
        assert await until(lambda: dispatcher.stats.sent == 1)
        assert dispatcher.pending == STUCK  # the silent URL's, still waiting
        assert dead.connections <= ORIGIN_SHARE  # its share, and no more


async def test_a_url_that_never_answers_holds_up_no_other_url() -> None:
    """Without an ingest URL every webhook goes to a URL its send named: one silent origin
    still leaves the others theirs."""
    async with (
        answering() as (other_url, other),
        silent() as (dead_url, dead),
        dispatching(None, retry=RETRY) as dispatcher,
    ):
        for index in range(STUCK):
            dispatcher.enqueue(_job(index, url=f"{dead_url}/notify/{index}"))
        assert await until(lambda: dead.connections >= ORIGIN_SHARE)
        for index in range(3):
            dispatcher.enqueue(_job(index, url=f"{other_url}/notify/{index}"))
        assert await until(lambda: len(other.requests) == 3), "the other URL stalled"
        assert dead.connections <= ORIGIN_SHARE


async def test_an_origin_is_forgotten_once_nothing_is_sent_to_it() -> None:
    """An entry per URL a send ever named would grow without end."""
    async with answering(delay_s=0.02) as (first, seen_first), \
            answering(delay_s=0.02) as (second, seen_second):
        poster = Poster(None, timeout_s=30)
        try:
            statuses = await asyncio.gather(*(poster.post(f"{url}/hook/{index}", b"{}", {})
                                              for index in range(20) for url in (first, second)))
            assert poster.origins == 0
        finally:
            await poster.aclose()
    assert statuses == [200] * 40
    assert len(seen_first.requests) == len(seen_second.requests) == 20
    # Each origin its share of requests at once, and no more.
    assert 1 < seen_first.most_in_flight <= ORIGIN_SHARE
    assert 1 < seen_second.most_in_flight <= ORIGIN_SHARE


async def test_a_url_that_never_answers_fills_no_more_than_its_share_of_the_queue() -> None:
    """Sends naming a silent URL faster than its tries time out filled the whole queue of held
    messages: every later message's webhooks, ingest's too, were dropped as queue_full."""
    limit, share = 20, 20 // HOST_QUEUE_SHARE
    async with (
        answering() as (ingest_url, ingest),
        silent() as (dead_url, _),
        dispatching(ingest_url, retry=RETRY, queue_limit=limit) as dispatcher,
    ):
        for index in range(limit):
            dispatcher.enqueue(_job(index, url=f"{dead_url}/notify/{index}"))
        assert dispatcher.pending == share
        assert dispatcher.stats.queue_full == limit - share
        dispatcher.enqueue(_job(limit))  # to the account's ingest URL
        assert dispatcher.pending == share + 1
        assert await until(lambda: len(ingest.requests) == 1), "ingest's webhook dropped"
        # Counted once its answer is read, after ingest has it: waited for, not raced.
        assert await until(lambda: dispatcher.stats.sent == 1)
