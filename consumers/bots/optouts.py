"""The opt-out list: a compacted topic keyed by account and contact, latest state wins.

The bots write it (STOP/START, provider opt-out signals); the sender and the bots read it.
Each change is also put on the outbound topic, keyed by the conversation like the commands
to that contact: Kafka then hands it to the sender before any command produced after it, so
no command slips past an opt-out while the sender's copy of the list catches up.
"""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, NamedTuple

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

from consumers.table import CompactedTable
from switchboard.logs import get_logger, masked_contact
from switchboard.records import (
    OPT_OUT_CHANGE_TYPE,
    OutRecord,
    cloudevent_headers,
    conversation_key,
    source_of,
)
from switchboard.topics import OPT_OUTS, OUTBOUND
from switchboard.validation import validation_problems

log = get_logger(__name__)
# How the bots' changes from a contact's own keyword or button begin their `source`.
CONTACT_SOURCES = ("keyword:", "postback:")
# The source of the state a record that cannot be read stands for (OptOutDecode.unreadable).
UNREADABLE_SOURCE = "unreadable-record"
EPOCH = datetime.fromtimestamp(0, UTC)


class Position(NamedTuple):
    """Where the contact's message that made a change is in Kafka: all of a contact's
    messages are in one partition of the inbound topic (keyed by conversation), in the order
    ingest stored them, so within it the offset orders them for every bot worker alike."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"  # a topic's name has no "/"


def read_position(written: object) -> Position | None:
    """A change's `from` as written ("<topic>/<partition>/<offset>"). One that does not read
    as a position is ignored: the change stands, ordered by its time alone, as one written
    without it (a contact read as unreadable would be opted out for a hint)."""
    if isinstance(written, Position) or written is None:
        return written
    topic, _, place = written.partition("/") if isinstance(written, str) else ("", "", "")
    partition, _, offset = place.partition("/")
    if not (topic and partition.isdigit() and offset.isdigit()):
        return None
    # The name interned: one object for all the records of a topic held in memory.
    return Position(sys.intern(topic), int(partition), int(offset))


class OptOutState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    account: str
    contact: str
    opted_out: bool
    source: str
    at: AwareDatetime  # compared with event times, which carry an offset
    # When the contact made it, where the bot stamped it later (opt_out_change.plan_change:
    # a START past an opt-out of its time, a STOP past a START of its time or past an import).
    # Written only then; readers that predate it ignore it (extra="ignore") and read `at`.
    made_at: AwareDatetime | None = None
    # The position of the contact's message that made it (a bot's change from a keyword): at
    # one contact time, the later message is the contact's later word (plan_change). Written
    # as one string, not three fields: every table holds a record as read until it is looked
    # up, and three cost some 35 bytes more a contact (measured: 207 bytes a record, 170).
    from_: Annotated[Position | None, BeforeValidator(read_position)] = Field(None, alias="from")

    @model_serializer(mode="wrap")
    def _without_optional_fields_unless_set(self, handler: SerializerFunctionWrapHandler
                                            ) -> dict[str, Any]:
        """The record as it was before `made_at` and `from`, but where they say something."""
        data: dict[str, Any] = handler(self)
        if data.get("made_at") is None:
            data.pop("made_at", None)
        data.pop("from_", None)
        if self.from_ is not None:
            data["from"] = str(self.from_)
        return data

    def contact_time(self) -> datetime:
        """When the contact (or provider, or import) made it: `at`, unless stamped later."""
        return self.made_at or self.at

    def made_by_contact(self) -> bool:
        """The contact's own STOP/START (a keyword or a button's payload), as the bots record
        it; not a provider's report, nor an import or another tool's change."""
        return self.source.startswith(CONTACT_SOURCES)

    def supersedes(self, other: OptOutState) -> bool:
        """Against the key's record in another partition of the list (its topic gained
        partitions, README *Topics*): the newer `at`; at the same time, the opt-out."""
        return (self.at, self.opted_out) > (other.at, other.opted_out)


def opt_out_key(account: str, contact: str) -> bytes:
    return f"{account}|{contact}".encode()


class OptOutDecode:
    """The opt-out list's decode (a table_values.FailSafeDecode): ValueError for a record that
    cannot be read, which the table then reads as `unreadable` says."""

    def __call__(self, value: bytes) -> OptOutState:
        return OptOutState.model_validate_json(value)

    @staticmethod
    def unreadable(key: bytes, error: ValueError) -> OptOutState:
        """A contact whose latest record in the list cannot be read (cut short, not JSON)
        reads as opted out: it may be a STOP, and messaging a contact who sent STOP breaks
        the law (TCPA) and carriers' rules, where the opposite only withholds a message.
        In its own partition the next record replaces it, as any. Stamped at the epoch, so
        that any readable record in another partition of the list wins: its write time
        would tell which is newer, but keeping it for every record until decoded cost some
        76 bytes a key, for a record cut short in a list whose topic gained partitions."""
        # At the first '|': an account name with one goes masked with the contact, in part.
        account, _, contact = key.decode(errors="replace").partition("|")
        # Not the value, nor pydantic's error (it quotes the value): they name the contact.
        reason = (validation_problems(error, "change", limit=5)
                  if isinstance(error, ValidationError) else type(error).__name__)
        log.error("opt-out record cannot be read; the contact reads as opted out until a "
                  "newer change", account=account, contact=masked_contact(contact),
                  error=reason)
        return OptOutState(account=account, contact=contact, opted_out=True,
                           source=UNREADABLE_SOURCE, at=EPOCH)


decode_opt_out = OptOutDecode()


def opt_out_records(provider: str, account: str, contact: str, opted_out: bool,
                    source: str, at: datetime | None = None,
                    made_at: datetime | None = None, position: Position | None = None
                    ) -> tuple[OutRecord, OutRecord]:
    """The change for the opt-out list, and its copy for the outbound topic (publish both).
    `at` is when the contact or provider made it (the event's time), so that however late
    or often it is handled, the newer change wins; now if not given (an import). `made_at`:
    the event's time where `at` was moved past it (kept only then). `position`: the
    contact's message that made it, if any."""
    at = at or datetime.now(UTC)
    state = OptOutState(account=account, contact=contact, opted_out=opted_out, source=source,
                        at=at, made_at=made_at if made_at != at else None,
                        from_=position)
    value = state.model_dump_json().encode()
    in_order = OutRecord(OUTBOUND.name, value, conversation_key(provider, account, contact),
                         cloudevent_headers(ce_id=str(uuid.uuid4()),
                                            source=source_of(provider, account),
                                            ce_type=OPT_OUT_CHANGE_TYPE, time=state.at))
    return OutRecord(OPT_OUTS.name, value, opt_out_key(account, contact)), in_order


class OptOutList:
    """The sender's and bots' view of the list (implements the sender's OptOutCheck).

    Changes this process published or met on the outbound topic are kept beside the table
    until the table has read them: the table's follower may still be behind, and an older
    record it reads meanwhile must not undo a newer change (the newer `at` wins).
    Entries the table has caught up with are dropped when looked up, and by a sweep each
    time the side list doubles: contacts never looked up again would otherwise stay in it.
    """

    SWEEP_FROM = 1024

    def __init__(self, table: CompactedTable[OptOutState]) -> None:
        self.table = table
        self._ahead: dict[bytes, OptOutState] = {}
        self._sweep_at = self.SWEEP_FROM

    def state(self, account: str, contact: str) -> OptOutState | None:
        key = opt_out_key(account, contact)
        ahead = self._ahead.get(key)
        if ahead is None:
            return self.table.get(key)
        if self._caught_up(key, ahead):
            del self._ahead[key]
            return self.table.get(key)
        return ahead

    def _caught_up(self, key: bytes, ahead: OptOutState) -> bool:
        """The table has read this change, or a newer one. At one `at`, the opt-out is the
        newer, as everywhere in the list (OptOutState.supersedes): a STOP of the time of the
        START the table holds (START, STOP in one second) is not caught up with yet."""
        read = self.table.get(key)
        return read is not None and not ahead.supersedes(read)

    def superseded(self, account: str, contact: str, at: datetime) -> bool:
        """A change stamped `at` is older than the one known: the newer `at` wins."""
        known = self.state(account, contact)
        return known is not None and known.at > at

    def is_opted_out(self, account: str, contact: str) -> bool:
        state = self.state(account, contact)
        return state is not None and state.opted_out

    def remember(self, value: bytes) -> None:
        """A change this process published or met on the outbound topic: visible at once,
        before the opt-out topic echoes it (ValueError if unreadable)."""
        state = decode_opt_out(value)
        key = opt_out_key(state.account, state.contact)
        known = self.state(state.account, state.contact)
        if known is None or not known.supersedes(state):  # a START of a STOP's time: older
            self._ahead[key] = state
            if len(self._ahead) >= self._sweep_at:
                self._sweep()

    def _sweep(self) -> None:
        """Drop what the table has read; what is left is still ahead of it. Sweeping again
        only once the list has doubled keeps the cost per change constant."""
        for key, ahead in list(self._ahead.items()):
            if self._caught_up(key, ahead):
                del self._ahead[key]
        self._sweep_at = max(self.SWEEP_FROM, 2 * len(self._ahead))
