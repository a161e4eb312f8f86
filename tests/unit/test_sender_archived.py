"""A command whose id the ledger keeps only as handled (archived: handled longer ago than
LEDGER_WHOLE_FOR_S, its result not held), redelivered by a replay or a group position reset:
not sent, nothing published (a ledger record without its result would replace the stored one),
counted `already_handled`. Within the hour the stored result is published again, as before."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import orjson
import pytest

from consumers.handling import PoisonRecord, Record
from consumers.ledger import LEDGER_ARCHIVING, LedgerEntry, decode_ledger, ledger_stands
from consumers.sender import Sender
from consumers.table import CompactedTable
from switchboard.commands import OutboundCommand, OutboundResult, ResultStatus
from switchboard.logs import configure_logging
from switchboard.topics import OUTBOUND_RESULTS, OUTBOUND_SENT
from tests.unit.fakes import FakeContext
from tests.unit.senders import ACCOUNTS, CONTACT, command, consumed, sends_counted
from tests.unit.test_compacted_table import FakeRecord

DAY_S = 86_400


@pytest.fixture
def provider_calls() -> list[httpx.Request]:
    return []


@pytest.fixture
async def sender(provider_calls: list[httpx.Request]) -> AsyncIterator[Sender]:
    """A sender whose ledger archives as the sender worker's does, its provider accepting."""
    def provider(request: httpx.Request) -> httpx.Response:
        provider_calls.append(request)
        return httpx.Response(200, json={"messages": [{"messageId": "ib-1"}]})

    ledger = CompactedTable("unused:9092", OUTBOUND_SENT.name, decode_ledger,
                            stands=ledger_stands, max_age_s=8 * DAY_S, archiving=LEDGER_ARCHIVING)
    async with httpx.AsyncClient(transport=httpx.MockTransport(provider)) as http:
        yield Sender(ACCOUNTS, ledger, http, public_url=None)


def handled(sender: Sender, command_id: str, state: str, age_s: float) -> None:
    """The ledger's record of the id, written `age_s` ago, as the table reads it."""
    result = OutboundResult(command_id=command_id, account="acme", provider="infobip",
                            to=CONTACT, attempts=1, completed_at=datetime.now(UTC),
                            status=ResultStatus.ACCEPTED if state == "sent"
                            else ResultStatus.FAILED)
    entry = LedgerEntry.model_validate({"state": state, "result": result})
    sender.ledger._apply(FakeRecord(command_id.encode(), entry.model_dump_json().encode(),
                                    timestamp=int((time.time() - age_s) * 1000)))


@pytest.mark.parametrize("state", ["sent", "failed"])
async def test_an_id_handled_days_ago_is_not_sent_again_nor_its_result_published(
        sender: Sender, provider_calls: list[httpx.Request], state: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")
    record = command()
    command_id = OutboundCommand.from_json(record.value).id
    handled(sender, command_id, state, 2 * DAY_S)
    before = sends_counted("infobip", "acme", "already_handled")
    ctx = FakeContext()
    await sender.handle(consumed(record), ctx)
    assert provider_calls == [] and ctx.published == []
    assert sends_counted("infobip", "acme", "already_handled") == before + 1
    [line] = [orjson.loads(line) for line in capsys.readouterr().err.splitlines()
              if "already handled" in line]
    assert line["event"] == ("command already handled long ago; not sent again, its result is "
                             "not republished")
    assert (line["command"], line["state"], line["account"]) == (command_id, state, "acme")
    assert CONTACT not in str(line)


@pytest.mark.parametrize("state", ["sent", "failed"])
async def test_an_id_handled_within_the_hour_has_its_result_published_again(
        sender: Sender, provider_calls: list[httpx.Request], state: str) -> None:
    record = command()
    command_id = OutboundCommand.from_json(record.value).id
    handled(sender, command_id, state, 600)
    before = sends_counted("infobip", "acme", "already_handled")
    ctx = FakeContext()
    await sender.handle(consumed(record), ctx)
    assert provider_calls == []
    stored, result = ctx.published
    assert (stored.topic, decode_ledger(stored.value).state) == (OUTBOUND_SENT.name, state)
    assert decode_ledger(stored.value).result is not None  # the stored record, result and all
    assert result.topic == OUTBOUND_RESULTS.name
    assert orjson.loads(result.value)["command_id"] == command_id
    assert sends_counted("infobip", "acme", "already_handled") == before


async def test_a_new_id_beside_archived_ones_is_sent(
        sender: Sender, provider_calls: list[httpx.Request]) -> None:
    for n in range(100):
        handled(sender, f"old-{n}", "sent", 2 * DAY_S)
    ctx = FakeContext()
    await sender.handle(consumed(command()), ctx)
    assert len(provider_calls) == 1
    assert [decode_ledger(r.value).state for r in ctx.published
            if r.topic == OUTBOUND_SENT.name] == ["pending", "sent"]


async def test_an_invalid_command_under_an_archived_id_gets_no_second_result(
        sender: Sender) -> None:
    handled(sender, "cmd-archived", "sent", 2 * DAY_S)
    ctx = FakeContext()
    invalid = Record("switchboard.outbound.v1", 0, 0, f"infobip|acme|{CONTACT}".encode(),
                     orjson.dumps({"id": "cmd-archived", "account": "acme", "to": CONTACT}), ())
    with pytest.raises(PoisonRecord):
        await sender.handle(invalid, ctx)
    assert ctx.published == []  # the id keeps its one result


@pytest.mark.parametrize("age_s", [600, 2 * DAY_S])
async def test_an_id_whose_ledger_record_cannot_be_read_is_not_sent(
        sender: Sender, provider_calls: list[httpx.Request], age_s: int,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Read as absent, it was sent again: the record may stand for a send the provider has.
    configure_logging("INFO", "json")
    record = command()
    command_id = OutboundCommand.from_json(record.value).id
    sender.ledger._apply(FakeRecord(command_id.encode(), b'{"state":"sen',
                                    timestamp=int((time.time() - age_s) * 1000)))
    ctx = FakeContext()
    await sender.handle(consumed(record), ctx)
    assert provider_calls == []
    [result] = [orjson.loads(r.value) for r in ctx.published if r.topic == OUTBOUND_RESULTS.name]
    assert (result["command_id"], result["status"]) == (command_id, "failed")
    assert result["error"]["code"] == "outcome_unknown"
    assert "ledger record cannot be read" in capsys.readouterr().err
