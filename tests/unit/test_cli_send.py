"""`switchboard send` refusals: said in one line before Kafka is asked (nothing listens)."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.cli import main

EXAMPLE_ACCOUNTS = Path(__file__).parents[2] / "examples" / "accounts.toml"


@pytest.mark.parametrize(("args", "says"), [
    (["shop", "+41790001111", "--text", "hi"], "no account named 'shop'; known: demo-bird"),
    (["demo-infobip", "+41790001111"], "text or media"),
    (["demo-infobip", "", "--text", "hi"], "to: String should have at least 1 character"),
    # Published, then failed by the sender (bad_outbound_config): without --wait, `send` said
    # only that it was published. The demo's webhook-only accounts have no outbound section.
    (["demo-messagebird", "+41790001111", "--text", "hi"],
     "account 'demo-messagebird' has no outbound settings ([accounts.demo-messagebird.outbound], "
     "docs/outbound.md): the sender cannot send for it; nothing published"),
])
def test_a_command_that_cannot_be_sent_is_one_error_line(
        args: list[str], says: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("SWITCHBOARD_ACCOUNTS_FILE", str(EXAMPLE_ACCOUNTS))
    assert main(["send", *args]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and says in captured.err
    assert captured.out == ""


@pytest.mark.parametrize("wait", ["-1", "soon", "nan", "7200"])
def test_a_wait_that_is_not_a_sane_number_of_seconds_is_refused(
        wait: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["send", "demo-infobip", "+41790001111", "--text", "hi", "--wait", wait])
    assert exited.value.code == 2 and "--wait" in capsys.readouterr().err
