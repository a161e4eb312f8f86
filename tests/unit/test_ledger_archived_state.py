"""The state an old ledger record is archived with, read from its bytes at start-up."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from consumers.ledger import LEDGER_ARCHIVING, LedgerEntry, ledger_record
from switchboard.commands import OutboundResult, ResultStatus

state_of_record = LEDGER_ARCHIVING.state_of_record
SENT, FAILED = 0, 1


def _result(status: ResultStatus) -> OutboundResult:
    return OutboundResult(command_id="cmd-1", account="acme", provider="infobip",
                          to="+41793026727", status=status, attempts=1,
                          completed_at=datetime(2026, 11, 20, tzinfo=UTC),
                          provider_message_id="m-1" if status == ResultStatus.ACCEPTED else None)


@pytest.mark.parametrize(("entry", "expected"), [
    (LedgerEntry(state="sent", result=_result(ResultStatus.ACCEPTED)), SENT),
    (LedgerEntry(state="sent"), SENT),
    (LedgerEntry(state="failed", result=_result(ResultStatus.FAILED)), FAILED),
    (LedgerEntry(state="pending"), None),
    (LedgerEntry(state="released"), None),
])
def test_each_state_the_sender_writes_reads_back(entry: LedgerEntry, expected: int | None) -> None:
    assert state_of_record(ledger_record(b"cmd-1", entry).value) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (b'{"state":"sent","result":{"id":', SENT),  # says sent, cut short: never sent again
    (b'{"state":"failed"}', FAILED),
    (b'{"state":"sentinel"}', None),  # not a prefix match of "sent"
    (b'{"result":null,"state":"sent"}', SENT),  # another writer's order: parsed
    (b'{ "state": "failed" }', FAILED),
    (b'{"state":"pending","result":null}', None),
    (b"not json", None),  # kept whole: decoding it says what is wrong
    (b"[1]", None),
])
def test_a_record_is_archived_by_the_state_it_states(value: bytes, expected: int | None) -> None:
    assert state_of_record(value) == expected
