"""Every case of the bots' opt-out rules, one row each, the expected outcome written out: what
the contact's known state (none; opted out or in, by their own keyword or not) and the time of
their STOP, START or HELP (older than that state, the same, newer) make of the change.

The rules (README, *Bots*): a change older than the known state is not applied (the newer `at`
wins), except a STOP over an opt-in the contact did not make, applied just after it, and a STOP
of the time the contact made an opt-in stamped later (a START after a STOP of one time); a late
change that goes against the standing state is not confirmed either; the very change already
stored is not written again; a confirmation "flips" when its change reverses the standing state
(an opt-out's is then always made, an opt-in's within its own limit).

Each row is checked twice: against plan_change (the rules alone) and through BotHandler (what
it publishes, logs and asks of the confirmation limits), which acts on that plan."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson
import pytest

from consumers.bots.compiled import CompiledAccount
from consumers.bots.handler import keywords_answer
from consumers.bots.opt_out_change import ChangePlan, plan_change
from consumers.bots.optouts import OptOutState, decode_opt_out, opt_out_key
from consumers.handling import Record
from switchboard.events import MessageEvent
from switchboard.topics import OPT_OUTS
from tests.unit.fakes import FakeContext
from tests.unit.test_bot_handler import commands, handler, record

CONTACT = "+4179000111"
KNOWN_AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
OLDER, SAME, NEWER = KNOWN_AT - timedelta(minutes=1), KNOWN_AT, KNOWN_AT + timedelta(minutes=1)
JUST_AFTER = datetime(2026, 11, 25, 12, 0, 0, 1, tzinfo=UTC)  # KNOWN_AT + 1 µs
TWO_AFTER = datetime(2026, 11, 25, 12, 0, 0, 2, tzinfo=UTC)  # KNOWN_AT + 2 µs
RECEIVED = {"older": OLDER, "same": SAME, "newer": NEWER}
# The known state's (source, opted_out, restamped): the bots write "keyword:" (or "postback:")
# for a contact's own change; a provider's report or an import is not the contact's.
# Restamped: made at KNOWN_AT, stamped JUST_AFTER, past an opposite change of that time.
KNOWN = {
    "none": None,
    "out by contact": ("keyword:STOP", True, False),
    "out by provider": ("provider:bird:103", True, False),
    "in by contact": ("keyword:START", False, False),
    "in by import": ("import:crm", False, False),
    "in restamped": ("keyword:START", False, True),
    "out restamped": ("keyword:STOP", True, True),
}
DECISIONS = {"STOP": True, "START": False, "HELP": None}
LATE_STOP = "STOP older than an opt-in the contact did not make: applied, confirmed"
AGAINST = ("opt-out change older than the contact's known state: not applied, "
           "not confirmed")
TIED_STOP = ("STOP of the time of the contact's START stamped after it: applied, confirmed "
             "(the opt-out wins a tie)")


class Plan(NamedTuple):
    apply: bool  # the change is published (opt-out list and outbound copy)
    at: datetime  # stamped so (the message's time unless said otherwise)
    confirm: bool  # the reply is made, if its limit admits it
    flips: bool  # it reverses the standing state: confirmed as a change, not a repeat
    reason: str | None  # logged: a late change, applied or dropped


ROWS: list[tuple[str, str, str, Plan]] = [
    # known state       received  word     apply  at          confirm flips  logged
    ("none",            "newer", "STOP",  Plan(True,  NEWER,      True,  True,  None)),
    ("none",            "newer", "START", Plan(True,  NEWER,      True,  False, None)),
    ("none",            "newer", "HELP",  Plan(False, NEWER,      True,  False, None)),

    ("out by contact",  "older", "STOP",  Plan(False, OLDER,      True,  False, None)),
    ("out by contact",  "older", "START", Plan(False, OLDER,      False, False, AGAINST)),
    ("out by contact",  "older", "HELP",  Plan(False, OLDER,      True,  False, None)),
    ("out by contact",  "same",  "STOP",  Plan(False, SAME,       True,  False, None)),
    ("out by contact",  "same",  "START", Plan(True,  JUST_AFTER, True,  True,  None)),
    ("out by contact",  "same",  "HELP",  Plan(False, SAME,       True,  False, None)),
    ("out by contact",  "newer", "STOP",  Plan(True,  NEWER,      True,  False, None)),
    ("out by contact",  "newer", "START", Plan(True,  NEWER,      True,  True,  None)),
    ("out by contact",  "newer", "HELP",  Plan(False, NEWER,      True,  False, None)),

    ("out by provider", "older", "STOP",  Plan(False, OLDER,      True,  False, None)),
    ("out by provider", "older", "START", Plan(False, OLDER,      False, False, AGAINST)),
    ("out by provider", "older", "HELP",  Plan(False, OLDER,      True,  False, None)),
    ("out by provider", "same",  "STOP",  Plan(False, SAME,       True,  False, None)),
    ("out by provider", "same",  "START", Plan(True,  JUST_AFTER, True,  True,  None)),
    ("out by provider", "same",  "HELP",  Plan(False, SAME,       True,  False, None)),
    ("out by provider", "newer", "STOP",  Plan(True,  NEWER,      True,  False, None)),
    ("out by provider", "newer", "START", Plan(True,  NEWER,      True,  True,  None)),
    ("out by provider", "newer", "HELP",  Plan(False, NEWER,      True,  False, None)),

    ("in by contact",   "older", "STOP",  Plan(False, OLDER,      False, False, AGAINST)),
    ("in by contact",   "older", "START", Plan(False, OLDER,      True,  False, None)),
    ("in by contact",   "older", "HELP",  Plan(False, OLDER,      True,  False, None)),
    ("in by contact",   "same",  "STOP",  Plan(True,  SAME,       True,  True,  None)),
    ("in by contact",   "same",  "START", Plan(False, SAME,       True,  False, None)),
    ("in by contact",   "same",  "HELP",  Plan(False, SAME,       True,  False, None)),
    ("in by contact",   "newer", "STOP",  Plan(True,  NEWER,      True,  True,  None)),
    ("in by contact",   "newer", "START", Plan(True,  NEWER,      True,  False, None)),
    ("in by contact",   "newer", "HELP",  Plan(False, NEWER,      True,  False, None)),

    ("in by import",    "older", "STOP",  Plan(True,  JUST_AFTER, True,  True,  LATE_STOP)),
    ("in by import",    "older", "START", Plan(False, OLDER,      True,  False, None)),
    ("in by import",    "older", "HELP",  Plan(False, OLDER,      True,  False, None)),
    ("in by import",    "same",  "STOP",  Plan(True,  SAME,       True,  True,  None)),
    ("in by import",    "same",  "START", Plan(False, SAME,       True,  False, None)),
    ("in by import",    "same",  "HELP",  Plan(False, SAME,       True,  False, None)),
    ("in by import",    "newer", "STOP",  Plan(True,  NEWER,      True,  True,  None)),
    ("in by import",    "newer", "START", Plan(True,  NEWER,      True,  False, None)),
    ("in by import",    "newer", "HELP",  Plan(False, NEWER,      True,  False, None)),

    # A START after a STOP of its time; "same" is the time the contact made it.
    ("in restamped",    "older", "STOP",  Plan(False, OLDER,      False, False, AGAINST)),
    ("in restamped",    "older", "START", Plan(False, OLDER,      True,  False, None)),
    ("in restamped",    "older", "HELP",  Plan(False, OLDER,      True,  False, None)),
    ("in restamped",    "same",  "STOP",  Plan(True,  TWO_AFTER,  True,  True,  TIED_STOP)),
    ("in restamped",    "same",  "START", Plan(False, SAME,       True,  False, None)),
    ("in restamped",    "same",  "HELP",  Plan(False, SAME,       True,  False, None)),
    ("in restamped",    "newer", "STOP",  Plan(True,  NEWER,      True,  True,  None)),
    ("in restamped",    "newer", "START", Plan(True,  NEWER,      True,  False, None)),
    ("in restamped",    "newer", "HELP",  Plan(False, NEWER,      True,  False, None)),

    # A STOP after that START: a START of their time is not applied (the opt-out wins).
    ("out restamped",   "older", "STOP",  Plan(False, OLDER,      True,  False, None)),
    ("out restamped",   "older", "START", Plan(False, OLDER,      False, False, AGAINST)),
    ("out restamped",   "older", "HELP",  Plan(False, OLDER,      True,  False, None)),
    ("out restamped",   "same",  "STOP",  Plan(False, SAME,       True,  False, None)),
    ("out restamped",   "same",  "START", Plan(False, SAME,       False, False, AGAINST)),
    ("out restamped",   "same",  "HELP",  Plan(False, SAME,       True,  False, None)),
    ("out restamped",   "newer", "STOP",  Plan(True,  NEWER,      True,  False, None)),
    ("out restamped",   "newer", "START", Plan(True,  NEWER,      True,  True,  None)),
    ("out restamped",   "newer", "HELP",  Plan(False, NEWER,      True,  False, None)),
]
CASES = [pytest.param(*row, id=f"{row[0]}-{row[1]}-{row[2]}") for row in ROWS]


def known_state(known: str) -> OptOutState | None:
    made = KNOWN[known]
    if made is None:
        return None
    source, opted_out, restamped = made
    if restamped:
        return OptOutState(account="acme", contact=CONTACT, opted_out=opted_out,
                           source=source, at=JUST_AFTER, made_at=KNOWN_AT)
    return OptOutState(account="acme", contact=CONTACT, opted_out=opted_out, source=source,
                       at=KNOWN_AT)


@pytest.mark.parametrize(("known", "when", "word", "expected"), CASES)
def test_the_plan_of_each_case_is_as_the_row_says(known: str, when: str, word: str,
                                                  expected: Plan) -> None:
    plan = plan_change(known_state(known), DECISIONS[word], RECEIVED[when])
    assert plan == ChangePlan(*expected)


def received(text: str, at: datetime) -> Record:
    event = orjson.loads(record(text, sender=CONTACT).value)
    event["received_at"] = at.isoformat()
    return Record("t", 0, 0, b"k", orjson.dumps(event))


@pytest.mark.parametrize(("known", "when", "word", "expected"), CASES)
async def test_the_handler_acts_on_each_case_as_the_row_says(
        tmp_path: Any, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
        known: str, when: str, word: str, expected: Plan) -> None:
    """Through the handler: what it publishes, and what it asks of the confirmation limits
    (`_admitted`'s change: the change when it flips, None for a repeat)."""
    bot = handler(tmp_path, keywords_answer)
    state = known_state(known)
    if state is not None:  # as the table has read it
        bot.opt_outs.table.put_local(opt_out_key("acme", CONTACT), state)
    asked: list[bool | None] = []

    def admitted(event: MessageEvent, account: CompiledAccount, change: bool | None) -> bool:
        asked.append(change)
        return True

    monkeypatch.setattr(bot, "_admitted", admitted)
    ctx = FakeContext()
    await bot.handle(received(word, RECEIVED[when]), ctx)

    changes = [decode_opt_out(r.value) for r in ctx.published if r.topic == OPT_OUTS.name]
    assert [c.opted_out for c in changes] in ([], [DECISIONS[word]])
    assert asked in ([], [None], [DECISIONS[word]])
    assert len(commands(ctx)) == len(asked)  # each admitted confirmation made
    logged = [reason for reason in (LATE_STOP, AGAINST, TIED_STOP) if reason in caplog.text]
    assert len(logged) <= 1 and CONTACT not in caplog.text
    seen = Plan(apply=bool(changes), at=changes[0].at if changes else RECEIVED[when],
                confirm=bool(asked), flips=asked not in ([], [None]),
                reason=logged[0] if logged else None)
    assert seen == expected
