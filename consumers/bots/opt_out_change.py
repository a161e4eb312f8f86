"""What a contact's STOP, START or HELP does to their opt-out state: the rules alone, from the
state known when it is handled. No I/O: BotHandler._comply reads the state once and acts on
the plan (records, log line, the confirmation's limit)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from consumers.bots.optouts import OptOutState, Position

# The log lines of a late change (the plan's `reason`).
LATE_STOP = "STOP older than an opt-in the contact did not make: applied, confirmed"
AGAINST = "opt-out change older than the contact's known state: not applied, not confirmed"
TIED_STOP = ("STOP of the time of the contact's START stamped after it: applied, confirmed "
             "(the opt-out wins a tie)")


@dataclass(frozen=True)
class ChangePlan:
    apply: bool  # the change is published (the opt-out list record and its outbound copy)
    at: datetime  # its stamp (the message's time, but for a late STOP)
    confirm: bool  # the compliance reply may be made (its limit still decides)
    flips: bool  # applied, it reverses the standing state: a change's confirmation
    reason: str | None = None  # a late change applied or dropped: logged


def plan_change(known: OptOutState | None, opt_out: bool | None,
                made_at: datetime, position: Position | None = None) -> ChangePlan:
    """`known`: the contact's state as the bot knows it; `opt_out`: the decision's change
    (None for HELP/INFO, no change); `made_at`: when the contact made it (decide.change_time:
    the message's time at its provider, no later than the gateway got it); `position`: where
    their message is in Kafka."""
    if opt_out is None:
        return ChangePlan(apply=False, at=made_at, confirm=True, flips=False)
    order = message_order(known, opt_out, made_at, position)
    if known is not None and order is not None:
        return _in_message_order(known, opt_out, made_at, order)
    if known is not None and known.at > made_at:
        return _late(known, opt_out, made_at)
    # This very change known (stored by another bot worker, or by this one before a
    # redelivery): not written again. Its copy, written after that worker's next change
    # of the contact (a START), would stand in the table as the latest, until this worker
    # handled the START too: the contact out meanwhile, the sender refusing them.
    if already_stored(known, opt_out, made_at):
        return ChangePlan(apply=False, at=made_at, confirm=True, flips=False)
    # Confirmed as a change only if it reverses the state that stands: a STOP from a contact
    # already out (a provider's report, say), a START from one who is in, is a repeat's.
    standing = known is not None and known.opted_out
    at = made_at
    if standing and not opt_out and known is not None and known.at == made_at:
        # A START handled after an opt-out of the same time (a STOP then START in one
        # request, which share the time it was received, or in one second of a provider that
        # gives whole seconds): at a tie the opt-out wins
        # (OptOutState.supersedes, OptOutList's catching up), so the contact told "Welcome
        # back" would stay out. Stamped just after it, as it was handled after it; the
        # record keeps the contact's time too (OptOutState.made_at, for a STOP after it).
        at = known.at + timedelta(microseconds=1)
    return ChangePlan(apply=True, at=at, confirm=True, flips=opt_out != standing)


def message_order(known: OptOutState | None, opt_out: bool, made_at: datetime,
                  position: Position | None) -> int | None:
    """At one contact time, which message came later: -1 this change's, older (a redelivery,
    or a bot worker behind the one that stored the known change), 0 the very one, 1 a later
    one. None where positions do not tell (a provider's report, an import, a record written
    before positions, another partition once the topic gained partitions, another time):
    the rules by time alone then decide. Contact time comes first: a provider's retry of an
    old webhook is a later record with the old time."""
    if known is None or position is None or known.contact_time() != made_at:
        return None
    stored = known.from_
    if stored is None or stored[:2] != position[:2]:
        return None
    if position.offset == stored.offset:
        # The same message deciding otherwise (the rules reloaded in between): by time.
        return 0 if opt_out == known.opted_out else None
    return 1 if position.offset > stored.offset else -1


def _in_message_order(known: OptOutState, opt_out: bool, made_at: datetime,
                      order: int) -> ChangePlan:
    """A change of the known change's contact time, ordered by their messages."""
    if order < 0 and opt_out != known.opted_out:
        return ChangePlan(apply=False, at=made_at, confirm=False, flips=False, reason=AGAINST)
    if order <= 0 or opt_out == known.opted_out:
        # Handled again, or a repeat of the standing state: stored already, answered as such.
        return ChangePlan(apply=False, at=made_at, confirm=True, flips=False)
    # The contact's later word: stamped after the known change wherever the newer `at` (at a
    # tie, the opt-out) wins, the sender's list and the table; the STOP's own time if it wins.
    later = (made_at, opt_out) > (known.at, known.opted_out)
    return ChangePlan(apply=True, at=made_at if later else known.at + timedelta(microseconds=1),
                      confirm=True, flips=True)


def already_stored(known: OptOutState | None, opt_out: bool, at: datetime) -> bool:
    """The known state is this very change (a provider's report too, which every bot worker
    handles): written again, it could land after the contact's next change."""
    return known is not None and (known.at, known.opted_out) == (at, opt_out)


def _late(known: OptOutState, opt_out: bool, made_at: datetime) -> ChangePlan:
    """A change older than the known one (a STOP redelivered after a START) would undo the
    newer one: not published."""
    if opt_out and not known.opted_out and known.made_at is not None \
            and known.made_at <= made_at:
        # Older than that opt-in's stamp only: the START was stamped after a STOP of its
        # time, and this STOP is of that time too (STOP, START, STOP in one request). Handled
        # after the START, it is the contact's last word, or the first STOP handled again (a
        # redelivery, a second bot worker behind the first), and their messages' positions
        # (message_order) do not tell which: an older record, another partition.
        # A STOP dropped breaks the law (TCPA, CTIA), a spare "you are unsubscribed" does
        # not: applied, stamped just after that opt-in, and confirmed. A START after it is
        # the same puzzle, and stays unapplied (against the state, below): the opt-out wins.
        return ChangePlan(apply=True, at=known.at + timedelta(microseconds=1), confirm=True,
                          flips=True, reason=TIED_STOP)
    if opt_out and not (known.opted_out or known.made_by_contact()):
        # A STOP is honoured whenever it comes (CTIA, TCPA): an opt-in the contact did not
        # make (an import stamped with its own time, while the bot was behind) does not
        # say they took it back. Applied and confirmed, stamped just after that opt-in,
        # so that it wins wherever the newest `at` wins (the sender's list, the table).
        return ChangePlan(apply=True, at=known.at + timedelta(microseconds=1), confirm=True,
                          flips=True, reason=LATE_STOP)
    if opt_out != known.opted_out:
        # Not applied, and against the state that stands (a START older than a
        # provider's opt-out): "Welcome back" would tell an opted-out contact they
        # are back in. Not confirmed either.
        return ChangePlan(apply=False, at=made_at, confirm=False, flips=False,
                          reason=AGAINST)
    # The state that stands says what it says: answered as a repeat.
    return ChangePlan(apply=False, at=made_at, confirm=True, flips=False)
