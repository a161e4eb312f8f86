"""Leaving the group at a stop, bounded: aiokafka's LeaveGroup waits for the consumer's request
timeout (125 s) where the broker went without a word. Past LEAVE_TIMEOUT_S the consumer's
connections are closed under its stop, which then ends on its own; a stop that still does not
end is given up after as long again."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from consumers import runtime as runtime_module
from consumers.runtime import WorkerRuntime
from tests.fakes import KeepingProducer


class Connection:
    """aiokafka's connection as far as the stop looks at it: closing it fails the requests
    waiting on it."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()

    def close(self) -> None:
        self.closed.set()


class Client:
    def __init__(self) -> None:
        self._conns = {1: Connection()}


class Consumer:
    def __init__(self) -> None:
        self._client = Client()


def _runtime() -> WorkerRuntime:
    return WorkerRuntime(name="test", kafka="unused:9092", topics=["t"],
                         handler=lambda record, ctx: asyncio.sleep(0),
                         producer=KeepingProducer())  # type: ignore[arg-type]


async def test_an_unanswered_leave_ends_once_the_connections_are_closed(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    consumer = Consumer()
    stopped: list[str] = []

    async def leave_unanswered(given: Any) -> None:
        await given._client._conns[1].closed.wait()  # the LeaveGroup fails: its connection
        stopped.append("rest of the stop done")

    monkeypatch.setattr(runtime_module, "stop_consumer", leave_unanswered)
    monkeypatch.setattr(runtime_module, "LEAVE_TIMEOUT_S", 0.1)
    await asyncio.wait_for(_runtime()._leave(consumer), 10)
    assert stopped == ["rest of the stop done"]
    assert "leaving the consumer group got no answer" in caplog.text


async def test_a_stop_that_does_not_end_even_so_is_given_up(
        monkeypatch: pytest.MonkeyPatch) -> None:
    cancelled = asyncio.Event()

    async def never_ends(given: Any) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            cancelled.set()

    monkeypatch.setattr(runtime_module, "stop_consumer", never_ends)
    monkeypatch.setattr(runtime_module, "LEAVE_TIMEOUT_S", 0.1)
    await asyncio.wait_for(_runtime()._leave(Consumer()), 10)  # returns, raises nothing
    await asyncio.wait_for(cancelled.wait(), 10)
