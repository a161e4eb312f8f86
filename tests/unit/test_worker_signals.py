"""`switchboard worker` and SIGHUP, without a broker: the sender takes it as a clean stop, as
`run` does (its terminal was closed); the bots keep it for reloading their rules."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition

from consumers import runtime as runtime_module
from consumers import workers
from consumers.bots.optouts import OptOutList, decode_opt_out
from consumers.handling import Context, Record
from consumers.runtime import WorkerRuntime
from consumers.table import CompactedTable
from switchboard.accounts import Accounts, load_accounts
from switchboard.settings import Settings
from switchboard.topics import OPT_OUTS
from tests.fakes import KeepingProducer
from tests.unit.fake_consumers import OneRecordConsumer

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_ACCOUNTS = REPO / "examples" / "accounts.toml"
TP = TopicPartition("switchboard.outbound.v1", 0)


async def _no_consumer(consumer: Any) -> None:
    return None


def _settings(**given: Any) -> Settings:
    return Settings(kafka_bootstrap_servers="127.0.0.1:1", accounts_file=EXAMPLE_ACCOUNTS,
                    create_topics=False, metrics_port=None, **given)


def hung_up_sender(nohup: bool) -> None:
    """Run in a child process (SIGHUP's default would end the test session): a worker that
    claims no SIGHUP of its own, the sender say, gets one once it is handling its record;
    `nohup`: started with SIGHUP ignored. Ends with SIGTERM if SIGHUP did not stop it."""
    from switchboard.cli.startup import run_loop

    if nohup:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    consumer = OneRecordConsumer(TP, 0)
    patch = pytest.MonkeyPatch()
    patch.setattr(runtime_module, "AIOKafkaConsumer", lambda **given: consumer)
    patch.setattr(runtime_module, "stop_consumer", _no_consumer)

    async def handle(record: Record, ctx: Context) -> None:
        signal.raise_signal(signal.SIGHUP)  # the terminal is closed
        await asyncio.sleep(0.2)
        print(f"stopping after SIGHUP: {ctx.winding_down.is_set()}", flush=True)
        if not ctx.winding_down.is_set():
            signal.raise_signal(signal.SIGTERM)

    @contextlib.asynccontextmanager
    async def sender(settings: Settings, accounts: Accounts) -> AsyncIterator[WorkerRuntime]:
        yield WorkerRuntime(name="sender", kafka="unused:9092", topics=[TP.topic],
                            handler=handle, producer=KeepingProducer())  # type: ignore[arg-type]

    run_loop(workers.run_worker(sender, _settings(), load_accounts(EXAMPLE_ACCOUNTS)))
    print(f"stopped cleanly, committed {consumer.commits[-1]}")


@pytest.mark.parametrize("nohup", [False, True], ids=["terminal", "nohup"])
def test_sighup_stops_the_sender_cleanly_unless_it_is_ignored(nohup: bool) -> None:
    # It had no handler for SIGHUP: closing the terminal it ran in ended it as a kill would,
    # its done work uncommitted, a send cut short reported outcome_unknown. Started under
    # nohup, SIGHUP is for it to ignore still.
    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [sys.executable, "-c",
         f"from tests.unit.test_worker_signals import hung_up_sender; hung_up_sender({nohup})"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"stopping after SIGHUP: {not nohup}",
        "stopped cleanly, committed {TopicPartition(topic='switchboard.outbound.v1', "
        "partition=0): 1}"]


async def test_sighup_still_reloads_the_keyword_bots_rules(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[accounts.acme]\nown_numbers = ["+15550000000"]\n')
    consumer = OneRecordConsumer(TP, 0)
    consumer.fetched = True  # nothing to handle

    @contextlib.asynccontextmanager
    async def opt_out_list(kafka: Any) -> AsyncIterator[OptOutList]:
        yield OptOutList(CompactedTable("unused:9092", OPT_OUTS.name, decode_opt_out))

    monkeypatch.setattr(workers, "_opt_out_list", opt_out_list)
    monkeypatch.setattr(runtime_module, "AIOKafkaConsumer", lambda **given: consumer)
    monkeypatch.setattr(runtime_module, "stop_consumer", _no_consumer)
    monkeypatch.setattr(runtime_module, "DurableProducer",
                        lambda *args, **kwargs: KeepingProducer())
    running = asyncio.create_task(workers.run_worker(
        workers.WORKERS["keywords"], _settings(rules_file=rules),
        load_accounts(EXAMPLE_ACCOUNTS)))
    try:
        for _ in range(500):
            if "worker started" in caplog.text:
                break
            await asyncio.sleep(0.01)
        signal.raise_signal(signal.SIGHUP)  # reload, as README says
        for _ in range(500):  # the rules are looked at every 2 s
            if "rules reloaded" in caplog.text:
                break
            await asyncio.sleep(0.01)
        assert "rules reloaded" in caplog.text
        assert not running.done()  # and it runs on
        signal.raise_signal(signal.SIGTERM)
        await asyncio.wait_for(running, 10)
    finally:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        if not running.done():
            running.cancel()
