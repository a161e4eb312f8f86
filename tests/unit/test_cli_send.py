"""`switchboard send` refusals: said in one line before Kafka is asked (nothing listens)."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.cli import main
from tests.accounts_toml import accounts_toml

EXAMPLE_ACCOUNTS = Path(__file__).parents[2] / "examples" / "accounts.toml"


@pytest.mark.parametrize(("args", "says"), [
    (["shop", "+41790001111", "--text", "hi"],
     "no account named 'shop'; the accounts that can send (with an outbound table): demo-bird, "
     "demo-infobip, demo-omnichat, demo-ubiqio, demo-webex\n"),  # not the webhook-only ones
    (["demo-infobip", "+41790001111"], "text or media"),
    (["demo-infobip", "", "--text", "hi"], "to: String should have at least 1 character"),
    # Published, then failed by the sender (bad_outbound_config): without --wait, `send` said
    # only that it was published. The demo's webhook-only accounts have no outbound section.
    (["demo-messagebird", "+41790001111", "--text", "hi"],
     "account 'demo-messagebird' has no outbound settings ([accounts.demo-messagebird.outbound], "
     "docs/outbound.md): the sender cannot send for it; nothing published"),
    # A national number: the sender would pass it on as given, to be read in some country.
    (["demo-infobip", "0791234567", "--text", "hi"],
     "`to` is a national number (a leading 0), but sms wants it international (E.164): + and "
     "the country code, e.g. +447911123456"),
    (["demo-webex", "079 123 45 67", "--text", "hi"], "national number"),
    (["demo-infobip", "0791234567", "--channel", "whatsapp", "--text", "hi"],
     "but whatsapp wants it international"),
    # A + typed before the national number: no country code begins with 0.
    (["demo-infobip", "+0791234567", "--text", "hi"], "national number"),
    (["demo-infobip", "+07911 123456", "--channel", "sms", "--text", "hi"], "national number"),
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


def test_an_unknown_account_where_none_can_send_says_that_none_can(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    webhooks_only = tmp_path / "accounts.toml"
    webhooks_only.write_text(accounts_toml({"shop-sms": {"provider": "infobip", "auth": {
        "scheme": "basic", "username": "shop", "secrets": ["shop-password"]}}}))
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("SWITCHBOARD_ACCOUNTS_FILE", str(webhooks_only))
    assert main(["send", "shop", "+41790001111", "--text", "hi"]) == 2
    assert capsys.readouterr().err == (
        "error: no account named 'shop'; no account can send: none has an outbound table "
        "([accounts.<name>.outbound], docs/outbound.md)\n")


@pytest.mark.parametrize("wait", ["-1", "soon", "nan", "7200"])
def test_a_wait_that_is_not_a_sane_number_of_seconds_is_refused(
        wait: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["send", "demo-infobip", "+41790001111", "--text", "hi", "--wait", wait])
    assert exited.value.code == 2 and "--wait" in capsys.readouterr().err


@pytest.mark.parametrize("args", [
    ["demo-infobip", "+447911123456"],
    ["demo-infobip", "447911123456"],  # read as E.164, as inbound events spell it
    ["demo-infobip", "0041791234567"],  # 00: the international prefix
    ["demo-infobip", "0791234567", "--channel", "telegram"],  # a chat id, not a number
    ["demo-omnichat", "0791234567"],  # its channel is messenger: a user key
    ["demo-ubiqio", "ACME"],  # not a number at all: the provider's to judge
])
def test_an_international_number_or_a_user_id_is_not_refused_as_national(
        args: list[str], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # nothing listens: exit 1
    monkeypatch.setenv("SWITCHBOARD_ACCOUNTS_FILE", str(EXAMPLE_ACCOUNTS))
    assert main(["send", *args, "--text", "hi"]) == 1
    assert "national" not in capsys.readouterr().err
