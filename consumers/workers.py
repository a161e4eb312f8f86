"""The workers `switchboard worker NAME` runs, each built from settings and accounts."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
from aiokafka import TopicPartition

from consumers.runtime import WorkerRuntime
from consumers.sender import Sender, decode_ledger
from consumers.table import CompactedTable
from switchboard.accounts import Accounts
from switchboard.settings import Settings
from switchboard.topics import OUTBOUND, OUTBOUND_SENT

WorkerFactory = Callable[[Settings, Accounts], AbstractAsyncContextManager[WorkerRuntime]]


def public_url(settings: Settings) -> str:
    """Where providers reach our ingest (for notify/webhook URLs in send requests)."""
    return settings.public_url or f"http://{settings.http_host}:{settings.http_port}"


@contextlib.asynccontextmanager
async def sender_worker(settings: Settings, accounts: Accounts) -> AsyncIterator[WorkerRuntime]:
    bootstrap = _bootstrap(settings)
    ledger = CompactedTable(bootstrap, OUTBOUND_SENT.name, decode_ledger)
    await ledger.start()
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=20)
    try:
        async with httpx.AsyncClient(limits=limits) as http:
            sender = Sender(accounts, ledger, http, public_url=public_url(settings))
            runtime = WorkerRuntime(name="sender", bootstrap_servers=bootstrap,
                                    topics=[OUTBOUND.name], handler=sender.handle)

            async def caught_up(assigned: list[TopicPartition]) -> None:
                # A partition may come from another sender: see what it marked as sent.
                await ledger.catch_up()

            runtime.on_assigned.append(caught_up)
            yield runtime
    finally:
        await ledger.stop()


WORKERS: dict[str, WorkerFactory] = {
    "sender": sender_worker,
}


def _bootstrap(settings: Settings) -> str:
    if not settings.kafka_bootstrap_servers:
        raise ValueError("workers need KAFKA_BOOTSTRAP_SERVERS")
    return settings.kafka_bootstrap_servers


async def run_worker(name: str, settings: Settings, accounts: Accounts,
                     extras: dict[str, Any] | None = None) -> None:
    """Run one worker until SIGINT/SIGTERM, then finish in-flight work and commit."""
    async with WORKERS[name](settings, accounts) as runtime:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, runtime.stop)
        await runtime.run()
