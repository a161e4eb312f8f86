"""A SWITCHBOARD_HTTP_HOST (or `serve --host`) that does not resolve: the same one line and
exit code from every command that listens, a setting to change (exit 2). `serve` said it
with exit 1, a worker with exit 2 and a line about its metrics. Kafka is never reached."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from switchboard.cli import startup
from switchboard.localkafka import free_port
from tests.unit.fakes import run_cli

EXAMPLE_ACCOUNTS = Path(__file__).parents[2] / "examples" / "accounts.toml"
NOWHERE = "nosuch.invalid"  # RFC 6761: never resolves


@pytest.mark.parametrize(("args", "setting"), [
    (["serve"], "SWITCHBOARD_HTTP_HOST"),
    (["serve", "--workers", "2"], "SWITCHBOARD_HTTP_HOST"),
    (["serve", "--host", NOWHERE], "--host"),
    (["worker", "sender"], "SWITCHBOARD_HTTP_HOST"),
    (["worker", "keywords"], "SWITCHBOARD_HTTP_HOST"),
    (["simulate"], "SWITCHBOARD_HTTP_HOST"),
    (["run"], "SWITCHBOARD_HTTP_HOST"),
])
def test_a_host_that_does_not_resolve_is_one_line_and_exit_2(args: list[str],
                                                             setting: str) -> None:
    result = run_cli({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # never reached
                      "SWITCHBOARD_ACCOUNTS_FILE": str(EXAMPLE_ACCOUNTS),
                      "SWITCHBOARD_HTTP_HOST": NOWHERE,
                      "SWITCHBOARD_METRICS_PORT": str(free_port())}, *args)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if not line.startswith("warning:")]
    assert len(errors) == 1, result.stderr  # (`run` warns first of a setting it does not read)
    assert errors[0].startswith(f"error: {setting}={NOWHERE} does not resolve: "), errors[0]
    assert errors[0].endswith("(set it to an address, or a name, of this machine)")


def test_a_worker_with_no_metrics_port_does_not_mind_the_host() -> None:
    """It listens nowhere then: it goes on, to Kafka (here refused: exit 1)."""
    result = run_cli({"KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
                      "SWITCHBOARD_ACCOUNTS_FILE": str(EXAMPLE_ACCOUNTS),
                      "SWITCHBOARD_HTTP_HOST": NOWHERE}, "worker", "sender")
    assert result.returncode == 1, result.stderr
    assert "error: cannot reach Kafka at 127.0.0.1:1" in result.stderr


def test_a_resolver_that_does_not_answer_is_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    """EAI_AGAIN (DNS down at boot, say) is no bad setting: starting again may cure it, and
    systemd's RestartPreventExitStatus=2 must not keep the service down for it."""
    def no_answer(*args: object, **kwargs: object) -> list[object]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", no_answer)
    said = startup.unresolved_host("ingest.example.com")
    assert said == (1, "error: SWITCHBOARD_HTTP_HOST=ingest.example.com does not resolve: "
                       "Temporary failure in name resolution (set it to an address, or a "
                       "name, of this machine)")
