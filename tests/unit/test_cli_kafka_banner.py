"""`switchboard kafka`, once its broker is ready, prints the KAFKA_BOOTSTRAP_SERVERS line the
other commands need, as `run` prints its `tail` line."""

from __future__ import annotations

import argparse
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

import switchboard.cli.run as run_module
import switchboard.topics
from switchboard.cli.run import cmd_run
from switchboard.settings import Settings
from tests.unit.fakes import StartedBroker


class CtrlCAtOnce:
    """The JVM `kafka` waits on, stopped by Ctrl-C as soon as it is waited for."""

    def wait(self) -> int:
        raise KeyboardInterrupt


class ReadyBroker(StartedBroker):
    bootstrap_servers = "127.0.0.1:19092"
    data_dir = Path(".switchboard/kafka")
    log_path = Path("broker.log")
    process = CtrlCAtOnce()


@pytest.fixture
def signals_given_back() -> Iterator[None]:
    handlers = {signum: signal.getsignal(signum)
                for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    yield
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


async def _no_topics(*args: object, **kwargs: object) -> None:
    pass


def test_the_ready_broker_is_said_as_a_line_to_paste(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        signals_given_back: None) -> None:
    broker = ReadyBroker()
    monkeypatch.setattr(run_module, "local_broker", lambda settings: broker)
    monkeypatch.setattr(switchboard.topics, "ensure_topics", _no_topics)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    assert cmd_run(argparse.Namespace(kafka_only=True), Settings()) == 0
    assert broker.stopped
    lines = capsys.readouterr().out.splitlines()
    assert "  export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092" in lines
