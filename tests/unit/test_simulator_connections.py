"""The simulator's webhooks reuse a few kept-open connections, however many jobs run at once,
and a job waiting for its delay holds up no other.

Real HTTP on 127.0.0.1: a bare HTTP/1.1 keep-alive server that answers every request 200
(tests/unit/webhook_servers.py), counting the connections opened and the requests answered.
"""

from __future__ import annotations

import asyncio

from simulator.base import Webhook
from simulator.posting import POST_CONNECTIONS
from simulator.webhooks import Job, RetryPolicy
from switchboard.accounts import parse_accounts
from tests.unit.webhook_servers import answering, dispatching

ACCOUNTS = parse_accounts({"accounts": {"plain": {
    "provider": "ubiqio", "auth": {"scheme": "token", "secrets": ["plain-webhook-token"]}}}})
ACCOUNT = ACCOUNTS.get("ubiqio", "plain")
JOBS = 300  # more than the 256 workers the dispatcher had: every one of them busy at once
HOOKS = 2


async def test_many_jobs_at_once_share_a_few_kept_connections() -> None:
    """256 workers each posting through one client's pool of 100 opened more connections than
    it kept (20), closing and opening them all along; webhooks beyond its 100 waited in httpx's
    pool, which is the simulator's own CPU spent walking it, and fails with PoolTimeout past
    the request timeout."""
    assert ACCOUNT is not None
    async with (
        answering(delay_s=0.005) as (url, counts),
        dispatching(url, retry=RetryPolicy(attempts=1, timeout_s=30)) as dispatcher,
    ):
        for index in range(JOBS):
            hooks = tuple(_hook(index) for _ in range(HOOKS))
            dispatcher.enqueue(Job("ubiqio", ACCOUNT, hooks, 0.0))
        await asyncio.wait_for(dispatcher.drain(), 60)

    assert dispatcher.stats.sent == len(counts.requests) == JOBS * HOOKS
    assert dispatcher.stats.failed == 0
    assert 1 <= counts.connections <= POST_CONNECTIONS


async def test_jobs_waiting_for_their_delay_hold_up_no_other() -> None:
    """With 256 workers, as many messages waiting out a long status delay held every worker:
    a message sent after them got its webhooks only once those had theirs."""
    assert ACCOUNT is not None
    async with (
        answering(delay_s=0.005) as (url, counts),
        dispatching(url, retry=RetryPolicy(attempts=1, timeout_s=30)) as dispatcher,
    ):
        for index in range(JOBS):
            dispatcher.enqueue(Job("ubiqio", ACCOUNT, (_hook(index),), delay_s=600))
        dispatcher.enqueue(Job("ubiqio", ACCOUNT, (_hook(JOBS),), delay_s=0))
        for _ in range(200):  # 10 s at most, against the 600 s it took
            if counts.requests:
                break
            await asyncio.sleep(0.05)
        assert (len(counts.requests), dispatcher.stats.sent) == (1, 1)
        assert dispatcher.pending == JOBS


def _hook(index: int) -> Webhook:
    return Webhook(kind="status:sent", body=b'{"n": %d}' % index)
