"""`switchboard worker` when its runtime stops short of a record, without a broker: one line
saying what failed and whether anything was lost, not a Python traceback."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition

from consumers import runtime as runtime_module
from consumers import workers
from consumers.handling import Context, MustNotSkip, Record
from consumers.runtime import RetryPolicy, UnreadableRecord, WorkerRuntime
from switchboard.accounts import Accounts, load_accounts
from switchboard.cli import build_parser
from switchboard.cli.worker import cmd_worker
from switchboard.logs import configure_logging
from switchboard.producer import PublishError
from switchboard.settings import Settings
from tests.fakes import KeepingProducer
from tests.unit.fake_consumers import OneRecordConsumer

EXAMPLE_ACCOUNTS = Path(__file__).resolve().parents[2] / "examples" / "accounts.toml"
TP = TopicPartition("switchboard.message.inbound.v1", 2)


class Refusing(KeepingProducer):
    """Kafka refuses every record for good (too large for its topic)."""

    async def publish(self, records: Any) -> None:
        raise PublishError("Kafka refused the records: MessageSizeTooLargeError()",
                           lasting=True)


def _worker_failing_with(exc: Exception, producer: KeepingProducer) -> workers.WorkerFactory:
    async def handler(record: Record, ctx: Context) -> None:
        raise exc

    @contextlib.asynccontextmanager
    async def factory(settings: Settings, accounts: Accounts) -> AsyncIterator[WorkerRuntime]:
        yield WorkerRuntime(name="keywords", kafka="unused:9092", topics=[TP.topic],
                            handler=handler, retry=RetryPolicy(max_attempts=2, base_delay_s=0,
                                                               max_delay_s=0),
                            producer=producer)  # type: ignore[arg-type]

    return factory


async def _stop(consumer: Any) -> None:
    return None


REFUSED = "Kafka refused the records: MessageSizeTooLargeError()"


async def _answers(*args: Any) -> None:
    """Kafka answering the command's first look: the consumer above is all there is of it."""


@pytest.mark.parametrize(("failure", "producer", "said"), [
    # The keyword bot, when Kafka refuses an opt-out change for good.
    (MustNotSkip(f"opt-out change not stored: {REFUSED}"), KeepingProducer(),
     f"opt-out change not stored: {REFUSED}"),
    # Any handler failure, once its dead letter is refused too.
    (RuntimeError("the CRM is down"), Refusing(), f"dead letter not stored: {REFUSED}"),
], ids=["opt-out", "dead-letter"])
def test_a_record_neither_handled_nor_kept_stops_the_worker_with_one_line(
        failure: Exception, producer: KeepingProducer, said: str,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # The worker stopped with a traceback that said neither which record nor that it was
    # not lost.
    monkeypatch.setitem(workers.WORKERS, "keywords", _worker_failing_with(failure, producer))
    consumer = OneRecordConsumer(TP, 41, key=b"acme|+41790000001")
    monkeypatch.setattr(runtime_module, "AIOKafkaConsumer", lambda **given: consumer)
    monkeypatch.setattr(runtime_module, "stop_consumer", _stop)
    monkeypatch.setattr("switchboard.cli.worker.reach_kafka", _answers)
    configure_logging("INFO", "json")
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:1", accounts_file=EXAMPLE_ACCOUNTS,
                        create_topics=False)

    code = cmd_worker(build_parser().parse_args(["worker", "keywords"]), settings)

    err = capsys.readouterr().err
    assert code == 1
    # None printed by the stop (the handler's is a field of the log's lines, without its text).
    assert not [line for line in err.splitlines() if line.startswith("Traceback")]
    last = err.splitlines()[-1]
    assert last == (f"error: worker keywords stopped: a record could be neither handled nor "
                    f"kept ({said}); it was not committed, and is handled again once the "
                    "worker restarts (the log names it)")
    [logged] = [json.loads(line) for line in err.splitlines()
                if "record neither handled nor kept" in line]
    assert (logged["topic"], logged["partition"], logged["offset"]) == (TP.topic, 2, 41)
    assert logged["level"] == "error"
    if isinstance(producer, Refusing):  # Kafka's reason, which says what to fix, is logged
        assert "MessageSizeTooLargeError" in logged["error"]
    # Committed at most up to the record (41: read again from it), never past it.
    assert all(offset <= 41 for commit in consumer.commits for offset in commit.values())


def test_run_says_so_in_one_line_too(monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    import switchboard.cli.run as run_module
    import switchboard.runall

    async def keywords_stopped(*args: Any, **kwargs: Any) -> None:
        raise MustNotSkip(f"opt-out change not stored: {REFUSED}")  # as the workers' run()

    monkeypatch.setattr(switchboard.runall, "run_all", keywords_stopped)
    settings = Settings(accounts_file=EXAMPLE_ACCOUNTS)
    demo = run_module._Demo(settings, load_accounts(EXAMPLE_ACCOUNTS))
    assert run_module._run_services(demo, "127.0.0.1:1", None) == 1
    assert capsys.readouterr().err == (
        "error: a worker stopped: a record could be neither handled nor kept (opt-out change "
        f"not stored: {REFUSED}); it was not committed, and is handled again once the worker "
        "restarts (the log names it)\n")


def test_a_record_aiokafka_cannot_read_stops_the_worker_with_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    said = ("aiokafka cannot read the record at t partition 1 offset 2 (a header key that is "
            "not UTF-8, there or before it in its producer's batch: 'utf-8' codec can't decode "
            "byte 0xff in position 0: invalid start byte); no worker of the group "
            "switchboard-keywords gets past it: see Troubleshooting in the README")

    async def stopped(*args: Any, **kwargs: Any) -> None:
        raise UnreadableRecord(said)  # as WorkerRuntime.run, tested against the broker

    monkeypatch.setattr(workers, "run_worker", stopped)
    settings = Settings(kafka_bootstrap_servers="127.0.0.1:1", accounts_file=EXAMPLE_ACCOUNTS)
    assert cmd_worker(build_parser().parse_args(["worker", "keywords"]), settings) == 1
    assert capsys.readouterr().err == f"error: worker keywords stopped: {said}\n"
