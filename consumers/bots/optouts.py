"""The opt-out list: a compacted topic keyed by account and contact, latest state wins.

The bots write it (STOP/START, provider opt-out signals); the sender and the bots read it.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict

from consumers.runtime import RetryLater
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


# How old an opt-out may be and still be missed by the sender: at most one catch-up round
# trip per this interval, instead of one per command.
MAX_AGE_S = 0.1


class OptOutList:
    """The sender's and bots' view of the list (implements the sender's OptOutCheck)."""

    def __init__(self, table: CompactedTable[OptOutState]) -> None:
        self.table = table

    async def catch_up(self, max_age_s: float = MAX_AGE_S, timeout_s: float = 10.0) -> None:
        """Every opt-out recorded more than `max_age_s` before this call is known on return.

        Under load a recent catch-up usually vouches for that and this returns at once; when
        none is recent enough, one round trip (shared by all callers meanwhile) is made.
        """
        try:
            await self.table.caught_up_since(time.monotonic() - max_age_s, timeout_s)
        except TimeoutError:
            raise RetryLater("the opt-out list could not be brought up to date") from None

    def is_opted_out(self, account: str, contact: str) -> bool:
        state = self.table.get(opt_out_key(account, contact))
        return state is not None and state.opted_out

    def remember(self, record: OutRecord) -> None:
        """What this process just published: visible at once, before the topic echoes it."""
        assert record.key is not None
        self.table.put_local(record.key, decode_opt_out(record.value))
