"""`switchboard run`: where to send requests once everything runs; stopping in order."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest

from consumers.workers import WORKERS
from switchboard import heap, runall
from switchboard.accounts import parse_accounts
from switchboard.runall import _all_started, run_all
from switchboard.settings import Settings


async def test_a_part_that_ended_during_start_up_is_not_announced_as_ready() -> None:
    async def fails_to_start() -> None:
        raise ConnectionError("Kafka refused the login")

    failed = asyncio.create_task(fails_to_start())
    await asyncio.sleep(0)
    assert await _all_started([lambda: False], [failed]) is False
    assert isinstance(failed.exception(), ConnectionError)


async def test_every_part_started_is_ready() -> None:
    running = asyncio.create_task(asyncio.sleep(10))
    try:
        assert await _all_started([lambda: True], [running]) is True
    finally:
        running.cancel()


class Server:
    """An HTTP server that notes when it is told to stop."""

    def __init__(self, order: list[str]) -> None:
        self.order = order
        self.started = True
        self._exit = asyncio.Event()

    @property
    def should_exit(self) -> bool:
        return self._exit.is_set()

    @should_exit.setter
    def should_exit(self, value: bool) -> None:
        self.order.append("servers stop")
        self._exit.set()

    async def serve(self) -> None:
        await self._exit.wait()


class Worker:
    """A worker that ends at once (as one that failed), or takes a while to finish."""

    def __init__(self, name: str, order: list[str], finishing_s: float | None) -> None:
        self.name, self.order, self.finishing_s = name, order, finishing_s
        self.ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self.on_hang_up: Any = None  # as WorkerRuntime's: the bots set it

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        if self.finishing_s is not None:
            await self._stopping.wait()
            await asyncio.sleep(self.finishing_s)  # a provider call in flight
        self.order.append(f"{self.name} done")


def factory(name: str, order: list[str], finishing_s: float | None) -> Any:
    @contextlib.asynccontextmanager
    async def worker(settings: Settings, accounts: Any) -> AsyncIterator[Worker]:
        yield Worker(name, order, finishing_s)
    return worker


async def _run_all(monkeypatch: pytest.MonkeyPatch, order: list[str],
                   workers: dict[str, float | None], factories: dict[str, Any] | None = None
                   ) -> None:
    for name, finishing_s in workers.items():
        monkeypatch.setitem(WORKERS, name, (factories or {}).get(name)
                            or factory(name, order, finishing_s))
    monkeypatch.setattr(runall, "_server", lambda *args: Server(order))
    monkeypatch.setattr(heap, "settle", lambda: None)  # the test process keeps its GC
    accounts = parse_accounts({"accounts": {"acme": {
        "provider": "ubiqio", "auth": {"scheme": "token", "secrets": ["a-long-token"]}}}})
    await asyncio.wait_for(run_all(Settings(kafka_bootstrap_servers="127.0.0.1:1"), accounts,
                                   workers=tuple(workers), simulator=True), 10)


async def test_the_servers_stop_only_once_the_workers_have_finished(
        monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    await _run_all(monkeypatch, order, {"ends": None, "sender": 0.2})
    assert order == ["ends done", "sender done", "servers stop", "servers stop"]


async def test_ctrl_c_is_given_back_once_it_has_returned(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop may run on (a test session's does): a Ctrl-C then must not go on setting the
    finished run's event, ignored, instead of interrupting."""
    await _run_all(monkeypatch, [], {"ends": None})
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


class HungUp(Worker):
    """A worker running when the terminal closes: the process gets SIGHUP."""

    async def run(self) -> None:
        signal.raise_signal(signal.SIGHUP)
        await super().run()


async def test_a_closed_terminal_stops_everything_although_the_bot_reloads_on_sighup(
        monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[str] = []
    reloads: list[int] = []

    @contextlib.asynccontextmanager
    async def keywords(settings: Settings, accounts: Any) -> AsyncIterator[Worker]:
        worker = HungUp("keywords", order, finishing_s=0.0)
        worker.on_hang_up = lambda: reloads.append(1)  # as the keyword bot's factory does
        yield worker

    try:
        await _run_all(monkeypatch, order, {"keywords": 0.0, "sender": 0.0},
                       factories={"keywords": keywords})
    finally:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
    assert sorted(order[:2]) == ["keywords done", "sender done"]
    assert order[2:] == ["servers stop", "servers stop"]
    assert reloads == []


class HungUpUnderNohup(Worker):
    """A worker running when the terminal of a `nohup switchboard run` closes; it stops the
    run with SIGTERM once it has seen whether SIGHUP did."""

    async def run(self) -> None:
        signal.raise_signal(signal.SIGHUP)
        await asyncio.sleep(0.2)
        self.order.append(f"stopped by SIGHUP: {self._stopping.is_set()}")
        signal.raise_signal(signal.SIGTERM)
        await super().run()


async def test_a_closed_terminal_does_not_stop_a_run_started_under_nohup(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # SIGHUP stopped `nohup switchboard run` all the same, as if nohup had not been asked.
    order: list[str] = []
    reloads: list[int] = []

    @contextlib.asynccontextmanager
    async def keywords(settings: Settings, accounts: Any) -> AsyncIterator[Worker]:
        worker = HungUpUnderNohup("keywords", order, finishing_s=0.0)
        worker.on_hang_up = lambda: reloads.append(1)  # as in the test above
        yield worker

    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        await _run_all(monkeypatch, order, {"keywords": 0.0}, factories={"keywords": keywords})
    finally:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
    assert order == ["stopped by SIGHUP: False", "keywords done", "servers stop",
                     "servers stop"]
    assert reloads == [1]  # the bot's, as `nohup switchboard worker keywords` has it
