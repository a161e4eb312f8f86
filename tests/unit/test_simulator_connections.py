"""The simulator's webhooks reuse a few kept-open connections, however many jobs run at once,
and a job waiting for its delay holds up no other.

Real HTTP on 127.0.0.1: a bare HTTP/1.1 keep-alive server that answers every request 200 and
counts the connections it was opened and the requests it answered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from simulator.base import Webhook
from simulator.posting import POST_CONNECTIONS
from simulator.webhooks import Job, RetryPolicy, WebhookDispatcher
from switchboard.accounts import parse_accounts

ACCOUNTS = parse_accounts({"accounts": {"plain": {
    "provider": "ubiqio", "auth": {"scheme": "token", "secrets": ["plain-webhook-token"]}}}})
ACCOUNT = ACCOUNTS.get("ubiqio", "plain")
JOBS = 300  # more than the 256 workers the dispatcher had: every one of them busy at once
HOOKS = 2


@dataclass
class Counts:
    connections: int = 0
    requests: int = 0


@contextlib.asynccontextmanager
async def _receiver() -> AsyncIterator[tuple[str, Counts]]:
    counts = Counts()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counts.connections += 1
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                await asyncio.sleep(0.005)  # requests overlap, as they do with a real ingest
                counts.requests += 1
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", counts
    finally:
        server.close()


async def test_many_jobs_at_once_share_a_few_kept_connections() -> None:
    """256 workers each posting through one client's pool of 100 opened more connections than
    it kept (20), closing and opening them all along; webhooks beyond its 100 waited in httpx's
    pool, which is the simulator's own CPU spent walking it, and fails with PoolTimeout past
    the request timeout."""
    assert ACCOUNT is not None
    async with _receiver() as (url, counts):
        dispatcher = WebhookDispatcher(url, retry=RetryPolicy(attempts=1, timeout_s=30))
        await dispatcher.start()
        try:
            for index in range(JOBS):
                hooks = tuple(_hook(index) for _ in range(HOOKS))
                dispatcher.enqueue(Job("ubiqio", ACCOUNT, hooks, 0.0))
            await asyncio.wait_for(dispatcher.drain(), 60)
        finally:
            await dispatcher.stop()

    assert dispatcher.stats.sent == counts.requests == JOBS * HOOKS
    assert dispatcher.stats.failed == 0
    assert 1 <= counts.connections <= POST_CONNECTIONS


async def test_jobs_waiting_for_their_delay_hold_up_no_other() -> None:
    """With 256 workers, as many messages waiting out a long status delay held every worker:
    a message sent after them got its webhooks only once those had theirs."""
    assert ACCOUNT is not None
    async with _receiver() as (url, counts):
        dispatcher = WebhookDispatcher(url, retry=RetryPolicy(attempts=1, timeout_s=30))
        await dispatcher.start()
        try:
            for index in range(JOBS):
                dispatcher.enqueue(Job("ubiqio", ACCOUNT, (_hook(index),), delay_s=600))
            dispatcher.enqueue(Job("ubiqio", ACCOUNT, (_hook(JOBS),), delay_s=0))
            for _ in range(200):  # 10 s at most, against the 600 s it took
                if counts.requests:
                    break
                await asyncio.sleep(0.05)
            assert (counts.requests, dispatcher.stats.sent) == (1, 1)
            assert dispatcher.pending == JOBS
        finally:
            await dispatcher.stop()


def _hook(index: int) -> Webhook:
    return Webhook(kind="status:sent", body=b'{"n": %d}' % index)
