"""Every Kafka error that ends `worker` (and `run`'s workers) is one `error:` line, exit 1, as a
missing ACL is: the broker's refusals and the client giving up alike. aiokafka's errors for a
client used wrongly are bugs, and stay tracebacks (logged at level critical)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import (
    IllegalStateError,
    InvalidSessionTimeoutError,
    KafkaTimeoutError,
    UnsupportedVersionError,
)

from switchboard.cli import main
from switchboard.cli.run import _prepare, _run_services
from switchboard.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SESSION_HINT = ("(its consumer's session timeout, 10 s, is outside the broker's "
                "group.min.session.timeout.ms to group.max.session.timeout.ms)")


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("SWITCHBOARD_ACCOUNTS_FILE", str(REPO / "examples" / "accounts.toml"))
    monkeypatch.delenv("SWITCHBOARD_METRICS_PORT", raising=False)
    monkeypatch.delenv("SWITCHBOARD_RULES_FILE", raising=False)
    return monkeypatch


def _raising(error: Exception) -> Any:
    async def fails(*args: Any, **kwargs: Any) -> None:
        raise error
    return fails


@pytest.mark.parametrize(("error", "line"), [
    (InvalidSessionTimeoutError(),
     f"error: Kafka refused worker keywords: [Error 26] InvalidSessionTimeoutError {SESSION_HINT}"),
    (UnsupportedVersionError(),
     "error: Kafka refused worker keywords: [Error 35] UnsupportedVersionError"),
    (KafkaTimeoutError(), "error: worker keywords stopped: Kafka: KafkaTimeoutError"),
], ids=["session-timeout", "broker-refusal", "client-gave-up"])
def test_a_kafka_error_ending_a_worker_is_one_error_line(
        error: Exception, line: str, env: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    env.setattr("consumers.workers.run_worker", _raising(error))
    assert main(["worker", "keywords"]) == 1
    captured = capsys.readouterr()
    assert captured.err == line + "\n"
    assert "critical" not in captured.out + captured.err


def test_a_kafka_client_used_wrongly_stays_a_traceback(
        env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    env.setattr("consumers.workers.run_worker", _raising(IllegalStateError("no assignment")))
    assert main(["worker", "keywords"]) == 1
    captured = capsys.readouterr()
    assert "error:" not in captured.err
    assert "critical" in captured.out + captured.err
    assert "IllegalStateError: no assignment" in captured.out + captured.err


def test_run_s_workers_say_it_as_worker_does(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("switchboard.runall.run_all", _raising(InvalidSessionTimeoutError()))
    monkeypatch.chdir(REPO)  # the demo accounts
    demo = _prepare(Settings())
    assert demo is not None
    assert _run_services(demo, "127.0.0.1:9092", None) == 1
    assert capsys.readouterr().err == ("error: Kafka refused run's workers: [Error 26] "
                                       f"InvalidSessionTimeoutError {SESSION_HINT}\n")
