"""A stop keyword of the account's own that is a START or HELP word is refused when the rules
are loaded: compliance reads stop words first, so it took that word from START or HELP."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from consumers.bots.decide import compliance
from consumers.bots.rules import RulesError, parse_rules
from switchboard.events import MessageEvent


@pytest.mark.parametrize(("word", "kind", "read_as"), [
    # A contact texting START to subscribe again was opted out again, told "Reply START to
    # subscribe again" (the default stop_confirmation): never back in by START.
    ("START", "start", "start"),
    ("Start!", "start", "start"),
    ("\uff35\uff2e\uff33\uff34\uff2f\uff30", "start", "unstop"),  # full-width UNSTOP
    ("\u0405\u0422\u0410R\u0422", "start", "start"),  # Cyrillic DZE, TE, A; Latin R
    # HELP opted the contact out instead of being answered, which carriers require.
    ("help", "help", "help"),
])
def test_a_stop_keyword_that_is_a_start_or_help_word_is_refused(word: str, kind: str,
                                                                read_as: str) -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules({"accounts": {"acme": {"extra_stop_keywords": ["ARRET", word]}}},
                    "bots.toml")
    message = str(caught.value)
    assert message.startswith("bots.toml: account 'acme': ")
    assert f"stop keyword {word!r} is the {kind} word {read_as!r}" in message
    assert "take it out of extra_stop_keywords" in message


@pytest.mark.parametrize("word", ["STARTER", "start-now", "stopp", "INFO", "arret"])
def test_other_stop_keywords_still_load_and_opt_out(word: str) -> None:
    """INFO too: it answers as HELP only unless something else answers it."""
    account = parse_rules({"accounts": {"acme": {"extra_stop_keywords": [word]}}}
                          ).accounts["acme"]
    event = MessageEvent.model_validate({
        "id": uuid.uuid4(), "type": "message.inbound", "provider": "infobip",
        "account": "acme", "channel": "sms", "direction": "inbound", "from": "+4179000111",
        "to": "+15550000000", "text": word, "received_at": datetime.now(UTC), "raw_id": "r"})
    decision = compliance(event, account)
    assert decision is not None and decision.opt_out is True
    start = event.model_copy(update={"text": "START"})
    started = compliance(start, account)
    assert started is not None and started.opt_out is False
