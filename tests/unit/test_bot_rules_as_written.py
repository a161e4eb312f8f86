"""Rules as a person writes them (copied with spaces, a blank left in): read as meant, or
refused at load naming the rule, never loaded to match nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from consumers.bots.decide import compliance, keyword_reply
from consumers.bots.rules import RulesError, parse_rules
from switchboard.events import MessageEvent


def inbound(text: str) -> MessageEvent:
    return MessageEvent.model_validate({
        "id": uuid.uuid4(), "type": "message.inbound", "provider": "infobip", "account": "acme",
        "channel": "sms", "direction": "inbound", "from": "+4179000111", "to": "+15550000000",
        "text": text, "received_at": datetime.now(UTC), "raw_id": "r"})


@pytest.mark.parametrize("word", [" ARRET", "ARRET ", "\tARRET\n", "\u00a0ARRET"])
def test_a_stop_keyword_written_with_spaces_around_it_opts_out(word: str) -> None:
    """It loaded, and opted no one out: the contact's ARRET is read without spaces, the stop
    word was kept with them. A missed opt-out is a compliance failure."""
    account = parse_rules({"accounts": {"acme": {"extra_stop_keywords": [word]}}}
                          ).accounts["acme"]
    for text in ("arret", "ARRET!", "Arret please"):
        decision = compliance(inbound(text), account)
        assert decision is not None and decision.opt_out is True, text


@pytest.mark.parametrize("keyword", [" price", "price ", "\tPrice\n"])
def test_a_keyword_written_with_spaces_around_it_matches(keyword: str) -> None:
    """It loaded and matched no message: a message's first word has no spaces."""
    account = parse_rules({"accounts": {"acme": {"rules": [
        {"keyword": keyword, "reply": "From 10 EUR ({rest})"}]}}}).accounts["acme"]
    decision = keyword_reply(inbound("Price? shoes"), account)
    assert decision is not None and decision.reply == "From 10 EUR (shoes)"


def test_a_prefix_written_with_spaces_before_it_matches_and_keeps_the_space_after() -> None:
    """A message is read without the spaces before it, so " order" matched nothing; a space
    after the prefix is the prefix's ("order " does not answer "orders")."""
    account = parse_rules({"accounts": {"acme": {"rules": [
        {"prefix": " order ", "reply": "Order {rest}"}]}}}).accounts["acme"]
    decision = keyword_reply(inbound("ORDER 12"), account)
    assert decision is not None and decision.reply == "Order 12"
    assert keyword_reply(inbound("orders"), account) is None


@pytest.mark.parametrize("matcher", ["keyword", "prefix"])
def test_a_blank_keyword_or_prefix_is_refused_naming_the_rule(matcher: str) -> None:
    """It loaded as a rule that answered nothing, with no word of why."""
    with pytest.raises(RulesError) as caught:
        parse_rules({"accounts": {"acme": {"rules": [
            {"keyword": "price", "reply": "From 10 EUR"}, {matcher: "  ", "reply": "x"}]}}},
            "bots.toml")
    assert str(caught.value) == (f"bots.toml: account 'acme': rule 2.{matcher}: {matcher} '  ' "
                                 "is blank: it would match no message")


def test_a_stop_keyword_of_a_mark_and_spaces_is_refused() -> None:
    """Read without its spaces, " \u0301" is a mark alone, which folds to nothing: it would
    opt out everyone who sends only an emoji or a photo."""
    with pytest.raises(RulesError) as caught:
        parse_rules({"accounts": {"acme": {"extra_stop_keywords": [" \u0301"]}}}, "bots.toml")
    assert "stop keyword ' \u0301' is only accents or marks" in str(caught.value)
