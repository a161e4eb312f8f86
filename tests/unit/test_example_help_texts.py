"""The help texts of examples/rules.toml offer only keywords their account answers."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from consumers.bots.decide import compliance, keyword_reply
from consumers.bots.rules import load_rules
from switchboard.events import MessageEvent

RULES = load_rules(Path(__file__).resolve().parents[2] / "examples" / "rules.toml")


def _inbound(account: str, text: str) -> MessageEvent:
    return MessageEvent.model_validate({
        "id": uuid.uuid4(), "type": "message.inbound", "provider": "webex", "account": account,
        "channel": "sms", "direction": "inbound", "from": "+41790000031", "to": "ACME",
        "text": text, "received_at": datetime.now(UTC), "raw_id": "r"})


@pytest.mark.parametrize("name", sorted(RULES.accounts))
def test_every_keyword_a_help_text_offers_gets_a_rule_reply(name: str) -> None:
    """The "*" defaults answer demo-webex, demo-omnichat and demo-ubiqio: their help text
    said "reply PRICE, ORDER <number> or TRACK <code>", and the demo's PRICE (README's
    Webex example) then got no answer at all, as "*" has no rules and no fallback."""
    account = RULES.accounts[name]
    offered = set(re.findall(r"\b[A-Z]{3,}\b", account.help.source))
    for word in sorted(offered):
        message = _inbound(name, f"{word} 12")
        if compliance(message, account) is not None:
            continue  # STOP, HELP, START: answered before any rule
        decision = keyword_reply(message, account)
        assert decision is not None and decision.purpose.startswith("rule-"), (name, word)
