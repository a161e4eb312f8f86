"""An account's keyword rules compare the message's first word read once, not once per rule:
an account of many keyword rules (product codes, say) held the bot's event loop, every
account's STOPs with it, for each message of a long first word."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from consumers.bots import decide
from consumers.bots.decide import keyword_reply
from consumers.bots.rules import parse_rules
from consumers.bots.words import word_forms
from switchboard.events import MessageEvent

RULES = 500


def event(text: str, postback: str | None = None) -> MessageEvent:
    return MessageEvent.model_validate({
        "id": uuid.uuid4(), "type": "message.inbound", "provider": "infobip",
        "account": "acme", "channel": "whatsapp", "direction": "inbound",
        "from": "+4179000111", "to": "+15550000000", "text": text, "postback": postback,
        "received_at": datetime.now(UTC), "raw_id": "r"})


@pytest.mark.parametrize(("text", "postback", "reply"), [
    ("x" * 300 + " more", None, "fallback"),  # no rule: every one compared
    (f"SKU{RULES - 1}? please", None, f"sku {RULES - 1}: please"),  # the last rule
    ("Menu", f"sku{RULES - 2}", f"sku {RULES - 2}:"),  # a button's payload
])
def test_the_first_word_is_read_once_whatever_the_number_of_keyword_rules(
        monkeypatch: pytest.MonkeyPatch, text: str, postback: str | None, reply: str) -> None:
    account = parse_rules({"accounts": {"acme": {"fallback": "fallback", "rules": [
        {"keyword": f"sku{n}", "reply": f"sku {n}: {{rest}}"} for n in range(RULES)]}}}
    ).accounts["acme"]
    reads: list[str] = []

    def counted(word: str, **kwargs: Any) -> set[str]:
        reads.append(word)
        return word_forms(word, **kwargs)

    monkeypatch.setattr(decide, "word_forms", counted)
    found = keyword_reply(event(text, postback), account)
    assert found is not None and found.reply == reply
    assert len(reads) <= 3, f"read {len(reads)} times"
