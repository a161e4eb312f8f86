"""The simulator's webhook queue is bounded. With ingest not answering, the jobs held fill it:
later sends are still accepted, their webhooks dropped and counted where `bench soak` reads
drops (`failed` of `/_sim/webhooks`, `queue_full` of those), said in one log line, and no more
jobs are held than the queue's limit. With ingest away, the webhooks dropped after their tries
are said once a minute too, not a line each. Real HTTP on 127.0.0.1: the simulator under
uvicorn, and an ingest that never answers or is not there."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from simulator.app import create_simulator_app
from simulator.webhooks import RetryPolicy, WebhookDispatcher
from switchboard.accounts import parse_accounts
from switchboard.localkafka import free_port
from tests.unit.fakes import served

LIMIT = 5
SENDS = 300
HOOKS_PER_SEND = 3  # Bird: accepted, sent, delivered
BIRD_AUTH = {"authorization": "AccessKey bird-access-key"}
ACCOUNTS = parse_accounts({"accounts": {"bird": {
    "provider": "bird", "auth": {"scheme": "bird-signature", "secrets": ["bird-signing-key"]},
    "outbound": {"base_url": "http://sim/bird", "access_key": "bird-access-key",
                 "workspace_id": "ws-1111", "channel_id": "ch-2222"}}}})
SEND_PATH = "/bird/workspaces/ws-1111/channels/ch-2222/messages"
SEND = {"receiver": {"contacts": [{"identifierKey": "phonenumber",
                                   "identifierValue": "+38761222333"}]},
        "body": {"type": "text", "text": {"text": "Hello"}}}


@contextlib.asynccontextmanager
async def _silent_ingest() -> AsyncIterator[str]:
    """An ingest URL whose server takes connections and never answers (until the block ends)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # open, and unanswered, until the block ends

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for writer in held:
            writer.close()


async def test_a_full_queue_drops_and_counts_webhooks_and_the_send_is_accepted(
        caplog: pytest.LogCaptureFixture) -> None:
    assert WebhookDispatcher(None).to_dict()["queue_limit"] == 10_000  # the default
    caplog.set_level(logging.WARNING)
    async with _silent_ingest() as ingest_url:
        # No attempt ends while the test runs: every job stays held.
        app = create_simulator_app(ACCOUNTS, ingest_url, status_delay_s=0,
                                   retry=RetryPolicy(attempts=1, timeout_s=600),
                                   webhook_queue=LIMIT)
        async with app.router.lifespan_context(app), served(app) as port, \
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            statuses = [(await client.post(SEND_PATH, json=SEND, headers=BIRD_AUTH)).status_code
                        for _ in range(SENDS)]
            stats: dict[str, Any] = (await client.get("/_sim/webhooks")).json()
            sends = (await client.get("/_sim/sends")).json()["sends"]

    assert statuses == [202] * SENDS  # a provider accepts a send whose webhooks it loses
    assert len(sends) == SENDS
    assert stats["queue_limit"] == LIMIT
    assert stats["pending"] == LIMIT  # bounded, however many sends come
    dropped_jobs = SENDS - LIMIT  # every job is held or was dropped
    assert stats["failed"] == stats["queue_full"] == dropped_jobs * HOOKS_PER_SEND
    assert (stats["sent"], stats["retried"]) == (0, 0)
    # Said once a minute, with how many more were dropped (here at the stop): not per drop.
    lines = _lines(caplog, "simulator webhook queue full")
    assert len(lines) <= 4
    assert sum(line.get("more", 1) for line in lines) == dropped_jobs


async def test_webhooks_dropped_with_ingest_away_are_logged_once_a_minute(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    sends = 40
    # Nothing listens there: every try is refused at once.
    app = create_simulator_app(ACCOUNTS, f"http://127.0.0.1:{free_port()}", status_delay_s=0,
                               retry=RetryPolicy(attempts=2, backoff_s=0))
    async with app.router.lifespan_context(app), served(app) as port, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for _ in range(sends):
            assert (await client.post(SEND_PATH, json=SEND, headers=BIRD_AUTH)).is_success
        await asyncio.wait_for(app.state.simulator.dispatcher.drain(), 120)
        stats: dict[str, Any] = (await client.get("/_sim/webhooks")).json()

    dropped = sends * HOOKS_PER_SEND
    assert (stats["failed"], stats["retried"], stats["queue_full"]) == (dropped, dropped, 0)
    for event, lines_for in [("simulator webhook dropped", dropped),
                             ("simulator webhook not delivered", 2 * dropped)]:
        lines = _lines(caplog, event)
        assert len(lines) <= 4, event  # not one per webhook (or per try)
        assert sum(line.get("more", 1) for line in lines) == lines_for, event


def _lines(caplog: pytest.LogCaptureFixture, event: str) -> list[dict[str, Any]]:
    """structlog's lines starting with `event` (a window's sum-up included)."""
    return [record.msg for record in caplog.records
            if isinstance(record.msg, dict) and record.msg["event"].startswith(event)]


def test_a_queue_limit_below_one_is_refused() -> None:
    """asyncio.Queue reads 0 as no bound at all."""
    with pytest.raises(ValueError, match="queue_limit"):
        WebhookDispatcher("http://127.0.0.1:1", queue_limit=0)
