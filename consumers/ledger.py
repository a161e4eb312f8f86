"""The sender's ledger: per command id, how far its sending went, in the compacted
outbound-sent topic (consumers.sender says why: no command id reaches a provider twice)."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from pydantic import BaseModel, SerializerFunctionWrapHandler, ValidationError, model_serializer

from consumers.table_archive import Archiving
from switchboard.commands import OutboundResult
from switchboard.logs import get_logger
from switchboard.records import OutRecord
from switchboard.topics import OUTBOUND_SENT

log = get_logger(__name__)

_PROGRESS = {"released": 0, "pending": 1, "sent": 2, "failed": 2}
# An id's entry is kept whole this long after its last write: what a redelivery, a handler's
# retry after a failed store or a rebalance needs (its result, published again). Older ones in
# a final state keep only that (consumers.table_archive): a few bytes, not some 620.
LEDGER_WHOLE_FOR_S = 3600
_FINAL: tuple[Literal["sent", "failed"], ...] = ("sent", "failed")  # archived, by index


class LedgerEntry(BaseModel):
    # "released": given back unsent while the sender stopped; whoever handles it next sends it.
    state: Literal["pending", "sent", "failed", "released"]
    result: OutboundResult | None = None
    # Of a `pending` mark: which write of it this is (random), so that the sender that wrote
    # it can tell, finding it again, whether one of its provider calls followed it (see
    # Sender._unsent_marks). None in other states, and in marks older than the field.
    pending_id: str | None = None

    @model_serializer(mode="wrap")
    def _pending_id_if_any(self, dump: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """pending_id only where there is one: every other record is written as before (some
        2 µs more a write; Field(exclude_if=...) is only in recent pydantic versions)."""
        fields: dict[str, Any] = dump(self)
        if fields.get("pending_id") is None:
            fields.pop("pending_id", None)
        return fields

    def supersedes(self, other: LedgerEntry) -> bool:
        """Against the id's record in another partition of the ledger (its topic gained
        partitions): the further state, an outcome, else `pending` (the provider may have it:
        not sent again), else `released`."""
        return _PROGRESS[self.state] > _PROGRESS[other.state]


def decode_ledger(value: bytes) -> LedgerEntry:
    """An id's entry; `pending` for a record that cannot be read. It may stand for a send the
    provider has, so it must not read as no record (sent again): as `pending`, the command is
    reported `outcome_unknown` and not sent, as after a sender died mid-call."""
    try:
        return LedgerEntry.model_validate_json(value)
    except ValidationError as exc:
        # The value is not logged: a result in it names the contact.
        log.error("ledger record cannot be read; its command is read as pending, not sent "
                  "again", error=f"{exc.error_count()} errors: {exc.errors()[0]['msg']}")
        return LedgerEntry(state="pending")


def ledger_stands(current: LedgerEntry, read: LedgerEntry) -> bool:
    """An outcome is final: the "pending" mark written before it, read back late, must not
    undo it (a redelivered command would then be reported `outcome_unknown`)."""
    return current.state in ("sent", "failed") and read.state in ("pending", "released")


def ledger_record(key: bytes, entry: LedgerEntry) -> OutRecord:
    return OutRecord(OUTBOUND_SENT.name, entry.model_dump_json().encode(), key)


# How ledger_record's JSON of a final entry begins (pydantic writes the fields in order, without
# spaces), up to the byte after the state: an old record's state then costs a slice and a dict
# lookup rather than a parse (which took 0.7 s of a million ids' load at start; the prefixes
# tried in turn some 0.2 s, this some 0.13). A record that begins so but does not decode is
# archived as what it says, as one that decodes as JSON but not as an entry is: never sent again.
_FINAL_BEGINNINGS = {f'{{"state":"{state}"{after}'.encode(): index
                     for index, state in enumerate(_FINAL) for after in ",}"}
_BEGINNING_LENGTHS = sorted({len(beginning) for beginning in _FINAL_BEGINNINGS})


def _final_state_of_record(value: bytes) -> int | None:
    for length in _BEGINNING_LENGTHS:  # no beginning is another's prefix: at most one matches
        if (index := _FINAL_BEGINNINGS.get(value[:length])) is not None:
            return index
    try:
        state = orjson.loads(value).get("state")
    except (orjson.JSONDecodeError, AttributeError):  # kept whole: decoding says what is wrong
        return None
    return _FINAL.index(state) if state in _FINAL else None


def _final_state_of(entry: LedgerEntry) -> int | None:
    return _FINAL.index(entry.state) if entry.state in _FINAL else None


def _archived_entry(state: int) -> LedgerEntry:
    """An id handled longer ago than LEDGER_WHOLE_FOR_S: its result is not held."""
    return LedgerEntry(state=_FINAL[state])


LEDGER_ARCHIVING = Archiving(LEDGER_WHOLE_FOR_S, _final_state_of_record, _final_state_of,
                             _archived_entry)
