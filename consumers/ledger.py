"""The sender's ledger: per command id, how far its sending went, in the compacted
outbound-sent topic (consumers.sender says why: no command id reaches a provider twice)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from switchboard.commands import OutboundResult
from switchboard.records import OutRecord
from switchboard.topics import OUTBOUND_SENT

_PROGRESS = {"released": 0, "pending": 1, "sent": 2, "failed": 2}


class LedgerEntry(BaseModel):
    # "released": given back unsent while the sender stopped; whoever handles it next sends it.
    state: Literal["pending", "sent", "failed", "released"]
    result: OutboundResult | None = None

    def supersedes(self, other: LedgerEntry) -> bool:
        """Against the id's record in another partition of the ledger (its topic gained
        partitions): the further state, an outcome, else `pending` (the provider may have it:
        not sent again), else `released`."""
        return _PROGRESS[self.state] > _PROGRESS[other.state]


def decode_ledger(value: bytes) -> LedgerEntry:
    return LedgerEntry.model_validate_json(value)


def ledger_stands(current: LedgerEntry, read: LedgerEntry) -> bool:
    """An outcome is final: the "pending" mark written before it, read back late, must not
    undo it (a redelivered command would then be reported `outcome_unknown`)."""
    return current.state in ("sent", "failed") and read.state in ("pending", "released")


def ledger_record(key: bytes, entry: LedgerEntry) -> OutRecord:
    return OutRecord(OUTBOUND_SENT.name, entry.model_dump_json().encode(), key)
