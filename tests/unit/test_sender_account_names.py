"""Account names with accents in commands: a command naming its account decomposed (NFD) is
sent by the account configured composed (NFC), as ingest takes its webhooks, through the sender
and through `switchboard send`."""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from consumers.bots.optouts import opt_out_records
from consumers.sender import Sender
from switchboard.accounts import parse_accounts
from switchboard.cli import main
from switchboard.commands import OutboundCommand
from switchboard.logs import configure_logging
from switchboard.records import command_record, conversation_key
from switchboard.topics import OUTBOUND_RESULTS
from tests.unit.fakes import FakeContext
from tests.unit.senders import CONTACT, accepting_sender, consumed

NFC = unicodedata.normalize("NFC", "café")
NFD = unicodedata.normalize("NFD", "café")
ACCOUNT = {"provider": "infobip",
           "auth": {"scheme": "basic", "username": "u", "secrets": ["webhook-password-123"]},
           "outbound": {"base_url": "http://provider.test", "api_key": "ib-key",
                        "sender": "Cafe"}}


@pytest.fixture
def provider_calls() -> list[httpx.Request]:
    return []


@pytest.fixture
async def sender(provider_calls: list[httpx.Request]) -> AsyncIterator[Sender]:
    async with accepting_sender(parse_accounts({"accounts": {NFC: ACCOUNT}}),
                                provider_calls) as sender:
        yield sender


def _command(account: str) -> OutboundCommand:
    return OutboundCommand(id=str(uuid.uuid4()), account=account, to=CONTACT, text="Hi",
                           created_at=datetime.now(UTC))


async def _handled(sender: Sender, command: OutboundCommand, ctx: FakeContext) -> None:
    """`command` handled as the runtime would, and again once re-keyed if it was."""
    await sender.handle(consumed(command_record(command, "infobip")), ctx)
    if [r.topic for r in ctx.published] == [command_record(command, "infobip").topic]:
        [rekeyed] = ctx.published
        ctx.published.clear()
        await sender.handle(consumed(rekeyed), ctx)


async def test_a_command_naming_its_account_decomposed_is_sent(
        sender: Sender, provider_calls: list[httpx.Request]) -> None:
    # It failed unknown_account, though ingest takes the same name's webhooks.
    ctx = FakeContext()
    await _handled(sender, _command(NFD), ctx)
    [record] = [r for r in ctx.published if r.topic == OUTBOUND_RESULTS.name]
    result = orjson.loads(record.value)
    assert result["status"] == "accepted"
    assert len(provider_calls) == 1
    # Named as events name it: Omnichat's correlation index matches results to events by it.
    assert result["account"] == NFC
    assert record.key == conversation_key("infobip", NFC, CONTACT)


async def test_an_opt_out_under_the_configured_name_covers_a_command_naming_it_decomposed(
        sender: Sender, provider_calls: list[httpx.Request]) -> None:
    ctx = FakeContext()
    _, stop = opt_out_records("infobip", NFC, CONTACT, True, "keyword:STOP")
    await sender.handle(consumed(stop), ctx)
    await _handled(sender, _command(NFD), ctx)
    [record] = [r for r in ctx.published if r.topic == OUTBOUND_RESULTS.name]
    assert orjson.loads(record.value)["error"]["code"] == "opted_out"
    assert provider_calls == []


def test_switchboard_send_takes_the_account_named_decomposed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `switchboard send café …` typed on a keyboard giving NFD was "no account named".
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(f"""
[accounts."{NFC}"]
provider = "infobip"
outbound = {{ base_url = "http://provider.test", api_key = "ib-key", sender = "Cafe" }}
[accounts."{NFC}".auth]
scheme = "basic"
username = "u"
secrets = ["webhook-password-123"]
""", encoding="utf-8")
    published: list[tuple[OutboundCommand, str]] = []

    async def reached(*args: Any) -> None:
        pass

    async def send_command(kafka: Any, command: OutboundCommand, provider: str,
                           **kwargs: Any) -> None:
        published.append((command, provider))

    monkeypatch.setattr("switchboard.cli.send.reach_kafka", reached)
    monkeypatch.setattr("switchboard.outbox.send_command", send_command)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("SWITCHBOARD_ACCOUNTS_FILE", str(accounts))
    assert main(["send", NFD, CONTACT, "--text", "hi"]) == 0
    [(command, provider)] = published
    assert (command.account, provider) == (NFC, "infobip")


async def test_a_command_keyed_by_its_account_decomposed_is_re_keyed_saying_why(
        sender: Sender, provider_calls: list[httpx.Request],
        capsys: pytest.CaptureFixture[str]) -> None:
    # Not taken as keyed right, though the names are the same once normalized: the key picks
    # the partition, and the NFD key's is not the conversation's, where an opt-out change to
    # the contact (keyed by the name as configured) is. Handled there, the command could be
    # sent after the contact opted out. The warning said "key commands with command_record",
    # which the producer did.
    configure_logging("INFO", "json")
    ctx = FakeContext()
    record = consumed(command_record(_command(NFD), "infobip"))
    await sender.handle(record, ctx)
    [rekeyed] = ctx.published
    assert rekeyed.key == conversation_key("infobip", NFC, CONTACT) != record.key
    assert provider_calls == []
    [line] = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()
              if "not keyed" in line]
    assert line["key_problem"] == ("the account's name in another Unicode form than "
                                   "configured (NFD, NFC)")
