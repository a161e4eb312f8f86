"""A reply limiter run to its bound: contacts made, held back, handled again and evicted in
any order keep `_entries` equal to what it holds (made and held-back ids together), within
max_entries, and nothing of an evicted contact stays behind."""

from __future__ import annotations

import random

import pytest

from consumers.bots.compiled import CompiledAccount
from consumers.bots.limits import ComplianceReplyLimit, ReplyLimit
from consumers.bots.rule_schema import AccountRules
from switchboard.events import MessageEvent
from tests.unit.test_bot_rules import inbound


@pytest.mark.parametrize("kind", [ReplyLimit, ComplianceReplyLimit])
@pytest.mark.parametrize("bound", [20, 50])
def test_entries_stay_counted_and_bounded(kind: type[ReplyLimit], bound: int) -> None:
    account = CompiledAccount("acme", AccountRules(reply_limit=3, compliance_reply_limit=3))
    limiter = kind("bot", max_entries=bound)
    rnd = random.Random(bound)
    seen: dict[str, list[MessageEvent]] = {}
    for _ in range(3000):
        contact = f"+4179{rnd.randrange(40):07d}"
        if seen.get(contact) and rnd.random() < 0.3:  # handled again: a retry, a redelivery
            event = rnd.choice(seen[contact])
        else:
            event = inbound("hi", sender=contact)
            seen.setdefault(contact, []).append(event)
        limiter.admit(event, account, rnd.choice([1, 1, 2, 4]), always=rnd.random() < 0.1)
        held = sum(len(ids) for ids in limiter._held.values())
        assert limiter._entries == sum(len(made) for made in limiter._made.values()) + held
        assert limiter._entries <= bound
        assert set(limiter._held) <= set(limiter._made)
        assert set(limiter._warned) <= set(limiter._made)
    assert len(limiter._made) < len(seen)  # contacts were evicted: 40 do not fit
