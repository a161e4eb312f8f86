"""`switchboard worker` and SIGHUP, without a broker: the sender takes one from its terminal
closing as a clean stop, as `run` does, and ignores any other (`kill -HUP`, a process manager's
reload), at its start too; the bots reload their rules on it."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import select
import signal
import socket
import subprocess
import sys
import termios
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition

from consumers import runtime as runtime_module
from consumers import workers
from consumers.bots.optouts import OptOutList, OptOutState, decode_opt_out
from consumers.handling import Context, Record
from consumers.runtime import WorkerRuntime
from consumers.table import CompactedTable
from switchboard.accounts import Accounts, load_accounts
from switchboard.localkafka import free_port
from switchboard.settings import Settings
from switchboard.topics import OPT_OUTS
from tests.fakes import KeepingProducer
from tests.unit.fake_consumers import OneRecordConsumer
from tests.unit.fakes import worker_start_in_child

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_ACCOUNTS = REPO / "examples" / "accounts.toml"
TP = TopicPartition("switchboard.outbound.v1", 0)


async def _no_consumer(consumer: Any) -> None:
    return None


def _settings(**given: Any) -> Settings:
    return Settings(kafka_bootstrap_servers="127.0.0.1:1", accounts_file=EXAMPLE_ACCOUNTS,
                    create_topics=False, metrics_port=None, **given)


def hung_up_sender(nohup: bool, terminal_closed: bool) -> None:
    """Run in a child process (SIGHUP's default would end the test session): the sender gets
    SIGHUP once it is handling its record, its terminal closed or not; `nohup`: started with
    SIGHUP ignored. Ends with SIGTERM if SIGHUP did not stop it."""
    from switchboard.cli.startup import run_loop

    if nohup:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    consumer = OneRecordConsumer(TP, 0)
    patch = pytest.MonkeyPatch()
    patch.setattr(runtime_module, "AIOKafkaConsumer", lambda **given: consumer)
    patch.setattr(runtime_module, "stop_consumer", _no_consumer)

    async def handle(record: Record, ctx: Context) -> None:
        signal.raise_signal(signal.SIGHUP)
        await asyncio.sleep(0.2)
        print(f"stopping after SIGHUP: {ctx.winding_down.is_set()}", flush=True)
        if not ctx.winding_down.is_set():
            signal.raise_signal(signal.SIGTERM)

    @contextlib.asynccontextmanager
    async def sender(settings: Settings, accounts: Accounts) -> AsyncIterator[WorkerRuntime]:
        yield WorkerRuntime(name="sender", kafka="unused:9092", topics=[TP.topic],
                            handler=handle, producer=KeepingProducer())  # type: ignore[arg-type]

    run_loop(workers.run_worker(sender, _settings(), load_accounts(EXAMPLE_ACCOUNTS),
                                terminal_closed=lambda: terminal_closed))
    print(f"stopped cleanly, committed {consumer.commits[-1]}")


@pytest.mark.parametrize(("nohup", "terminal_closed"), [(False, True), (False, False),
                                                        (True, False)],
                         ids=["terminal closed", "kill -HUP", "nohup"])
def test_sighup_stops_the_sender_cleanly_only_when_its_terminal_closed(
        nohup: bool, terminal_closed: bool) -> None:
    # It had no handler for SIGHUP: closing the terminal it ran in ended it as a kill would,
    # its done work uncommitted, a send cut short reported outcome_unknown. Any other
    # SIGHUP (a process manager's reload) then stopped it: it has nothing to reload.
    env = os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        [sys.executable, "-c", "from tests.unit.test_worker_signals import hung_up_sender; "
                               f"hung_up_sender({nohup}, {terminal_closed})"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"stopping after SIGHUP: {terminal_closed}",
        "stopped cleanly, committed {TopicPartition(topic='switchboard.outbound.v1', "
        "partition=0): 1}"]
    assert ("SIGHUP ignored: this worker has nothing to reload" in result.stderr) is (
        not terminal_closed)


def hung_up_while_starting() -> None:
    """The sender gets SIGHUP while it asks Kafka whether it answers (then SIGTERM)."""
    from switchboard.cli import main

    async def hung_up_while_waiting(*args: Any) -> None:
        signal.raise_signal(signal.SIGHUP)
        await asyncio.sleep(0.2)
        print("running on after SIGHUP", flush=True)
        signal.raise_signal(signal.SIGTERM)
        await asyncio.sleep(30)

    pytest.MonkeyPatch().setattr("switchboard.cli.worker.reach_kafka", hung_up_while_waiting)
    print(f"exit {main(['worker', 'sender'])}", flush=True)


def test_sighup_while_the_sender_starts_is_ignored() -> None:
    # SIGHUP's default killed it until it consumed (exit -1, nothing said).
    result = worker_start_in_child("from tests.unit.test_worker_signals import "
                                   "hung_up_while_starting; hung_up_while_starting()")
    assert result.returncode == 0, (result.returncode, result.stderr[-2000:])
    assert result.stdout.splitlines() == ["running on after SIGHUP", "exit 0"]
    assert "SIGHUP ignored while the worker starts" in result.stderr
    assert "worker stopped before it started (SIGTERM)" in result.stderr


class _NeverStarted(CompactedTable[OptOutState]):
    async def catch_up(self, timeout_s: float = 30.0) -> None:
        """Caught up at an assignment: nothing is written to a table of no broker."""


async def test_sighup_still_reloads_the_keyword_bots_rules(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[accounts.acme]\nown_numbers = ["+15550000000"]\n')
    consumer = OneRecordConsumer(TP, 0)
    consumer.fetched = True  # nothing to handle

    @contextlib.asynccontextmanager
    async def opt_out_list(kafka: Any) -> AsyncIterator[OptOutList]:
        yield OptOutList(_NeverStarted("unused:9092", OPT_OUTS.name, decode_opt_out))

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


def test_closing_the_terminal_of_a_starting_worker_stops_it_cleanly() -> None:
    # A worker in a terminal of its own (a pseudo-terminal it controls, as a shell in a
    # terminal window gives it) still reaching Kafka (a cluster that never answers): closing
    # the terminal stops it, exit 0. SIGHUP's default killed it; a SIGHUP taken for a reload
    # only would leave it running with nobody to stop it.
    silent = socket.create_server(("127.0.0.1", 0))  # connects, never answers
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("SWITCHBOARD_") and k != "KAFKA_BOOTSTRAP_SERVERS"}
    env = clean | {"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{silent.getsockname()[1]}",
                   "SWITCHBOARD_ACCOUNTS_FILE": str(EXAMPLE_ACCOUNTS),
                   "SWITCHBOARD_METRICS_PORT": str(free_port()),
                   "SWITCHBOARD_CREATE_TOPICS": "false"}
    terminal, its_end = os.openpty()

    def controlled_by_it() -> None:  # in the child, a session leader (start_new_session)
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    with silent:
        process = subprocess.Popen(
            [sys.executable, "-m", "switchboard.cli", "worker", "sender"], env=env, cwd=REPO,
            stdin=its_end, stdout=its_end, stderr=its_end, start_new_session=True,
            preexec_fn=controlled_by_it)
        os.close(its_end)
        try:
            shown, deadline = b"", time.monotonic() + 30
            while b"metrics and probes served" not in shown:  # its handlers are taken
                left = deadline - time.monotonic()
                assert left > 0 and select.select([terminal], [], [], left)[0], shown
                shown += os.read(terminal, 4096)
            os.close(terminal)  # the kernel sends SIGHUP
            code = process.wait(30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert code == 0
