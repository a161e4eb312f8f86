"""`switchboard worker` given SIGTERM while it starts (Kafka not answering yet, the sender
reading its ledger), without a broker: the start is cancelled, what it opened is closed, and it
exits 0, as a stop. SIGTERM's default killed it, its connections cut and nothing said.

In child processes: without its handler, SIGTERM would end the test session."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest

from consumers.runtime import WorkerRuntime
from switchboard.accounts import Accounts
from switchboard.settings import Settings
from tests.unit.fakes import worker_start_in_child


async def _terminated_while_waiting(*args: Any) -> None:
    signal.raise_signal(signal.SIGTERM)
    await asyncio.sleep(30)  # Kafka not answering: its 10 s, or a long ledger


def terminated_while_kafka_is_asked() -> None:
    from switchboard.cli import main

    pytest.MonkeyPatch().setattr("switchboard.cli.worker.reach_kafka",
                                 _terminated_while_waiting)
    print(f"exit {main(['worker', 'sender'])}", flush=True)


def terminated_while_the_worker_gets_ready() -> None:
    from consumers import workers
    from switchboard.cli import main

    @contextlib.asynccontextmanager
    async def reading_its_ledger(settings: Settings,
                                 accounts: Accounts) -> AsyncIterator[WorkerRuntime]:
        try:
            await _terminated_while_waiting()
            raise AssertionError("not cancelled")
            yield  # never: a factory
        finally:
            print("what it opened is closed", flush=True)

    async def answers(*args: Any) -> None:
        return None

    patch = pytest.MonkeyPatch()
    patch.setattr("switchboard.cli.worker.reach_kafka", answers)
    patch.setitem(workers.WORKERS, "sender", reading_its_ledger)
    print(f"exit {main(['worker', 'sender'])}", flush=True)


@pytest.mark.parametrize(("where", "said"), [
    ("terminated_while_kafka_is_asked", ["exit 0"]),
    ("terminated_while_the_worker_gets_ready", ["what it opened is closed", "exit 0"]),
])
def test_sigterm_while_a_worker_starts_stops_it_cleanly(where: str, said: list[str]) -> None:
    result = worker_start_in_child(
        f"from tests.unit.test_worker_sigterm_at_start import {where}; {where}()")
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert result.stdout.splitlines() == said
    assert "worker stopped before it started (SIGTERM)" in result.stderr
    assert "Traceback" not in result.stderr
