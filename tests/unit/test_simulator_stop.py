"""Stopping the simulator's webhooks always finishes, closing every connection: an error in a
bucket's request (a merge that raises) is failed, counted and logged, not raised out of stop()
before the clients were closed. A job handed in before start or after stop is dropped and
counted, not run as a task that outlives the dispatcher. Real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from simulator.base import Bucket, Webhook
from simulator.webhooks import Job, RetryPolicy, WebhookDispatcher
from switchboard.accounts import parse_accounts
from tests.polling import until
from tests.unit.webhook_servers import answering

ACCOUNTS = parse_accounts({"accounts": {"plain": {
    "provider": "ubiqio", "auth": {"scheme": "token", "secrets": ["plain-webhook-token"]}}}})
ACCOUNT = ACCOUNTS.get("ubiqio", "plain")
RETRY = RetryPolicy(attempts=1, timeout_s=30)


def _merge_fails(bodies: Sequence[bytes]) -> bytes:
    raise RuntimeError("merge failed")


BROKEN = Bucket("reports", max_reports=100, max_wait_s=0.05, merge=_merge_fails)


def _job(bucket: Bucket | None = None, count: int = 1) -> Job:
    assert ACCOUNT is not None
    return Job("ubiqio", ACCOUNT, tuple(Webhook("status:sent", b"{}", bucket=bucket)
                                        for _ in range(count)), 0.0)


async def test_a_bucket_that_raises_fails_its_reports_and_stop_closes_every_connection(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR)
    async with answering() as (url, seen):
        dispatcher = WebhookDispatcher(url, retry=RETRY)
        await dispatcher.start()
        try:
            dispatcher.enqueue(_job())  # opens a kept connection
            dispatcher.enqueue(_job(BROKEN))  # two reports in one bucket: merged, which raises
            dispatcher.enqueue(_job(BROKEN))
            await asyncio.wait_for(dispatcher.drain(), 30)
            assert (dispatcher.stats.sent, dispatcher.stats.failed) == (1, 2)
            assert seen.open == 1
        finally:
            await dispatcher.stop()  # raised the lane's RuntimeError, the clients left open
        assert await until(lambda: seen.open == 0)
    assert any(isinstance(record.msg, dict) and record.msg["event"]
               == "simulator webhook bucket failed" for record in caplog.records)


async def test_a_job_handed_in_before_start_or_after_stop_is_dropped_and_counted() -> None:
    async with answering() as (url, seen):
        dispatcher = WebhookDispatcher(url, retry=RETRY)
        dispatcher.enqueue(_job(count=2))  # before start
        await dispatcher.start()
        dispatcher.enqueue(_job())
        await asyncio.wait_for(dispatcher.drain(), 30)
        await dispatcher.stop()
        dispatcher.enqueue(_job(count=3))  # after stop: an orderly shutdown's late send
        assert dispatcher.pending == 0  # no task left behind
        await asyncio.sleep(0.1)
    assert len(seen.requests) == 1
    assert (dispatcher.stats.sent, dispatcher.stats.failed) == (1, 5)
