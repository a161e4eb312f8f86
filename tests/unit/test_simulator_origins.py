"""An origin, which a URL's requests share (its connections' share, its share of the queue of
held messages), is scheme, host and port: a URL's user info, and a default port written out
or left out, do not make another. Sends naming one silent host with a different user in each
URL (`http://msg-1:token@hooks.example/`) each had an origin of their own: together they took
every shared connection and the whole queue, the failure the shares are there to prevent.
Real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio

from simulator.base import Webhook
from simulator.posting import ORIGIN_SHARE, Poster, origin
from simulator.webhooks import HOST_QUEUE_SHARE, Job, RetryPolicy, WebhookDispatcher
from switchboard.accounts import parse_accounts
from tests.polling import until
from tests.unit.webhook_servers import answering, silent

ACCOUNTS = parse_accounts({"accounts": {"plain": {
    "provider": "ubiqio", "auth": {"scheme": "token", "secrets": ["plain-webhook-token"]}}}})
ACCOUNT = ACCOUNTS.get("ubiqio", "plain")
RETRY = RetryPolicy(attempts=1, timeout_s=120)  # no try to the silent URL ends in a test


def _with_user(url: str, index: int) -> str:
    """`url` (http://127.0.0.1:port) with a user and password of its own."""
    return url.replace("http://", f"http://msg-{index}:token@") + f"/notify/{index}"


def test_user_info_and_a_default_port_make_no_other_origin() -> None:
    assert origin("http://msg-1:token@Hooks.Example:8080/a") == "http://hooks.example:8080"
    assert origin("http://hooks.example:80/a") == origin("HTTP://hooks.example/b")
    assert origin("https://hooks.example:443/a") == origin("https://hooks.example")
    assert origin("http://[::1]:8080/a") == "http://[::1]:8080"
    assert origin("http://127.0.0.1:0/a") != origin("http://127.0.0.1/a")
    assert origin("http://127.0.0.1:99999/a") == "http://127.0.0.1:99999/a"  # httpx refuses it
    assert Poster("http://127.0.0.1", timeout_s=10).foreign("http://127.0.0.1:80/hook") is None


async def test_a_silent_host_named_with_a_user_per_message_holds_one_share() -> None:
    async with silent() as (dead_url, dead):
        poster = Poster(None, timeout_s=120)
        posts = [asyncio.create_task(poster.post(_with_user(dead_url, index), b"{}", {}))
                 for index in range(ORIGIN_SHARE * 5)]
        try:
            assert await until(lambda: dead.connections >= ORIGIN_SHARE)
            assert poster.origins == 1  # one per URL's user before: 40 origins, 32 connections
        finally:
            for post in posts:
                post.cancel()
            await asyncio.gather(*posts, return_exceptions=True)
            await poster.aclose()


async def test_a_silent_host_named_with_a_user_per_message_fills_only_its_queue_share() -> None:
    limit, share = 20, 20 // HOST_QUEUE_SHARE
    async with answering() as (ingest_url, ingest), silent() as (dead_url, _):
        dispatcher = WebhookDispatcher(ingest_url, retry=RETRY, queue_limit=limit)
        await dispatcher.start()
        assert ACCOUNT is not None
        try:
            for index in range(limit):
                hook = Webhook(kind="status:sent", body=b"{}")
                dispatcher.enqueue(Job("ubiqio", ACCOUNT, (hook,), 0.0,
                                       url=_with_user(dead_url, index), signed=False))
            assert dispatcher.pending == share
            assert dispatcher.stats.queue_full == limit - share
            dispatcher.enqueue(Job("ubiqio", ACCOUNT, (Webhook("status:sent", b"{}"),), 0.0))
            assert await until(lambda: len(ingest.requests) == 1), "ingest's webhook dropped"
        finally:
            await dispatcher.stop()
