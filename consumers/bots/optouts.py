"""The opt-out list: a compacted topic keyed by account and contact, latest state wins.

The bots write it (STOP/START, provider opt-out signals); the sender and the bots read it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

from consumers.table import CompactedTable
from switchboard.records import OutRecord
from switchboard.topics import OPT_OUTS


class OptOutState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    account: str
    contact: str
    opted_out: bool
    source: str
    at: datetime


def opt_out_key(account: str, contact: str) -> bytes:
    return f"{account}|{contact}".encode()


def decode_opt_out(value: bytes) -> OptOutState:
    return OptOutState.model_validate_json(value)


def opt_out_record(account: str, contact: str, opted_out: bool, source: str) -> OutRecord:
    state = OptOutState(account=account, contact=contact, opted_out=opted_out, source=source,
                        at=datetime.now(UTC))
    return OutRecord(OPT_OUTS.name, state.model_dump_json().encode(),
                     opt_out_key(account, contact))


class OptOutList:
    """The sender's and bots' view of the list (implements the sender's OptOutCheck)."""

    def __init__(self, table: CompactedTable[OptOutState]) -> None:
        self.table = table

    def is_opted_out(self, account: str, contact: str) -> bool:
        state = self.table.get(opt_out_key(account, contact))
        return state is not None and state.opted_out

    def remember(self, record: OutRecord) -> None:
        """What this process just published: visible at once, before the topic echoes it."""
        assert record.key is not None
        self.table.put_local(record.key, decode_opt_out(record.value))
