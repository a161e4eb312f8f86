"""A webhook URL named by a send (Infobip's notifyUrl, Webex's notifyurl, Ubiqio's
statusCallback) is the sender's to get wrong. One httpx refuses before any request (a port past
65535, an unclosed IPv6 bracket) raises no httpx.HTTPError: its webhooks must still be dropped
and counted as failed, as an unreachable one's are, and the simulator must still stop cleanly.
No connection is made: httpx refuses each URL before connecting.
"""

from __future__ import annotations

import asyncio

import pytest

from simulator.base import Bucket, Webhook
from simulator.webhooks import Job, RetryPolicy, WebhookDispatcher
from switchboard.accounts import parse_accounts

ACCOUNTS = parse_accounts({"accounts": {"plain": {
    "provider": "ubiqio", "auth": {"scheme": "token", "secrets": ["plain-webhook-token"]}}}})
ACCOUNT = ACCOUNTS.get("ubiqio", "plain")
BUCKET = Bucket("reports", max_reports=100, max_wait_s=0.01,
                merge=lambda bodies: b"[" + b",".join(bodies) + b"]")


@pytest.mark.parametrize("url", ["http://127.0.0.1:99999/hook", "http://[::1/hook"])
@pytest.mark.parametrize("bucket", [None, BUCKET], ids=["own request", "bucketed"])
async def test_webhooks_to_a_url_httpx_refuses_are_dropped_and_counted(
        url: str, bucket: Bucket | None) -> None:
    assert ACCOUNT is not None
    dispatcher = WebhookDispatcher("http://127.0.0.1:9",
                                   retry=RetryPolicy(attempts=2, backoff_s=0.0, timeout_s=5))
    await dispatcher.start()
    try:
        hooks = (Webhook("status:sent", b'{"n":1}', bucket=bucket),
                 Webhook("status:delivered", b'{"n":2}', bucket=bucket))
        dispatcher.enqueue(Job("ubiqio", ACCOUNT, hooks, 0.0, url=url, signed=False))
        await asyncio.wait_for(dispatcher.drain(), 10)
    finally:
        await dispatcher.stop()  # raised the lane's error: the clients were never closed
    assert (dispatcher.stats.sent, dispatcher.stats.failed) == (0, 2)
    assert [entry["outcome"] for entry in dispatcher.recent] == ["failed", "failed"]
