"""How many automated and compliance replies a contact gets: two auto-responders (ours and an
"I'm driving" one, another company's keyword bot) would otherwise answer each other without
end, each SMS paid for. Per bot process, in bounded memory: bot workers side by side (each
group reads every message) each count a contact's replies, and the README says to divide the
limit among them. A count shared through a compacted table would not hold either: two workers
answer the same message at about the same time, each reading the count before the other's
write reaches it."""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from typing import ClassVar

from prometheus_client import Counter

from consumers.bots.compiled import CompiledAccount
from switchboard.events import MessageEvent
from switchboard.logs import get_logger, masked_contact

log = get_logger(__name__)

LIMITED = Counter("switchboard_bot_replies_limited_total",
                  "Automated replies withheld: the contact had reached the account's "
                  "reply_limit in reply_limit_window_s", ["worker", "account"])
COMPLIANCE_LIMITED = Counter("switchboard_bot_compliance_replies_limited_total",
                             "Compliance replies withheld: ones that changed no state (HELP, "
                             "INFO, a repeated STOP or START), or confirmations of opt-ins, "
                             "past the account's compliance_reply_limit in "
                             "reply_limit_window_s (each counted apart)",
                             ["worker", "account"])


class ReplyLimit:
    """At most an account's reply_limit automated replies per contact in a sliding window
    (bounded memory): our fallback and a sender that is not in own_numbers (an "I'm driving"
    auto-responder, another company's bot) would otherwise answer each other without end.

    A message is counted when its replies are made, before they are published: handled
    again (a failed publish retried, a redelivery) within the window, it gets them again,
    with the same command ids, neither counted twice nor refused. One held back and handled
    again is held back again, counted in `refused` once. An answer of several replies (a
    custom bot's) is made whole, if all of it fits in what is left, or not at all: cut, it
    could be a question without its buttons."""

    refused: ClassVar[Counter] = LIMITED
    warning: ClassVar[str] = ("reply limit reached: no automated replies to this contact for "
                              "now (an automated sender? add it to own_numbers)")

    @staticmethod
    def limit_of(account: CompiledAccount) -> int:
        return account.reply_limit

    # The ids of a contact's latest messages held back: one handled again (its opt-out
    # change's publish retried while Kafka is away, a redelivery) is held back again but not
    # counted again, which counted each retry and could trip an alert during an outage. A
    # retry is of the contact's latest message (one conversation is handled in order), a
    # redelivery of those since the last commit.
    held_kept: ClassVar[int] = 16

    def __init__(self, worker: str, max_entries: int = 100_000) -> None:
        self.worker = worker
        self.max_entries = max_entries
        # A list per contact, not a deque: a deque's 600-odd bytes, even holding one reply,
        # made a limiter at its bound 117 MB (measured); lists are short (about reply_limit).
        self._made: OrderedDict[tuple[str, str], list[tuple[float, uuid.UUID, int]]] = \
            OrderedDict()
        self._entries = 0  # made and held back ones, together within max_entries
        self._held: dict[tuple[str, str], list[uuid.UUID]] = {}
        self._warned: dict[tuple[str, str], float] = {}

    def admit(self, event: MessageEvent, account: CompiledAccount, replies: int, *,
              always: bool = False) -> bool:
        """Whether to make the replies to `event`; `always`: made, and not counted, whatever
        the count (remembered so that made again, they are not taken for a new message's)."""
        assert event.from_ is not None
        key, now = (event.account, event.from_), time.monotonic()
        made = self._made.setdefault(key, [])
        self._made.move_to_end(key)
        expired = 0
        while expired < len(made) and now - made[expired][0] >= account.reply_limit_window_s:
            expired += 1
        if expired:
            del made[:expired]
            self._entries -= expired
        if any(made_for == event.id for _, made_for, _ in made):
            return True  # its replies were made: made again, same ids (sent once)
        # Made whole only if it fits: a custom bot's answer of several replies, let in below
        # the limit, went past it (three replies at nine of ten: twelve).
        if not always and sum(count for _, _, count in made) + replies > self.limit_of(account):
            self._refused(key, now, account, replies, event.id)
            return False
        made.append((now, event.id, 0 if always else replies))
        self._entries += 1
        self._bound()
        return True

    def _bound(self) -> None:
        while self._entries > self.max_entries:
            evicted, oldest = self._made.popitem(last=False)
            self._entries -= len(oldest) + len(self._held.pop(evicted, ()))
            self._warned.pop(evicted, None)

    def _refused(self, key: tuple[str, str], now: float, account: CompiledAccount,
                 replies: int, event_id: uuid.UUID) -> None:
        held = self._held.setdefault(key, [])
        if event_id in held:
            return  # counted, and logged if it was its turn, when first held back
        held.append(event_id)
        self._entries += 1
        if len(held) > self.held_kept:
            del held[0]
            self._entries -= 1
        self._bound()
        self.refused.labels(self.worker, key[0]).inc(replies)
        warned = self._warned.get(key)
        if warned is None or now - warned >= account.reply_limit_window_s:
            self._warned[key] = now  # once per window and contact, not per message
            # The contact masked (logs are no place for phone numbers); the event id finds it.
            log.warning(self.warning, worker=self.worker, account=key[0],
                        contact=masked_contact(key[1]), event_id=str(event_id),
                        replies=replies, limit=self.limit_of(account),
                        window_s=account.reply_limit_window_s)


class ComplianceReplyLimit(ReplyLimit):
    """At most an account's compliance_reply_limit compliance replies that change no state
    (HELP, INFO, a STOP from a contact already opted out, a START from one who is not) per
    contact in the same window: an automated sender whose text begins "HELP:" or "STOP" (our
    own help text echoed, another company's keyword bot) would otherwise get one each time.
    A reply that confirms a change is admitted `always` (an opt-in's once the limit below
    let it in)."""

    refused = COMPLIANCE_LIMITED
    warning = ("compliance reply limit reached: no HELP/INFO answers or repeated STOP/START "
               "confirmations to this contact for now (an automated sender? its opt-out "
               "changes are still recorded, and a change of state is still confirmed)")

    @staticmethod
    def limit_of(account: CompiledAccount) -> int:
        return account.compliance_reply_limit


class OptInConfirmationLimit(ComplianceReplyLimit):
    """At most an account's compliance_reply_limit confirmations of opt-ins (a START from an
    opted-out contact) per contact in the window, counted apart from the other compliance
    replies (a contact's HELPs do not hold back their "Welcome back"). Two bots whose
    confirmations opt each other out and back in by turns (one's stop_confirmation beginning
    START, its start_confirmation STOP; the other's beginning STOP and START) made every
    message a change, always confirmed, and traded them without end. An opt-out is always
    confirmed, once: a loop of changes needs opt-ins too, so holding these back ends it."""

    warning = ("opt-in confirmation limit reached: this contact opted out and back in "
               "compliance_reply_limit times in the window (an automated sender, a bot whose "
               "confirmations begin STOP and START?): their opt-ins are still recorded, not "
               "confirmed for now; an opt-out is still confirmed")
