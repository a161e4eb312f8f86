"""Rules as a person writes them (copied with spaces, a blank left in): read as meant, or
refused at load naming the rule, never loaded to match nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from consumers.bots.decide import compliance, keyword_reply
from consumers.bots.rules import RulesError, load_rules, parse_rules
from consumers.bots.rules_source import RulesSource
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


SPARE = "take one of them out, or give each its channel"
SHADOWED = [
    # The same keyword twice, in another case or with accents: the first always answers.
    ('keyword = "price"', 'keyword = "PRÎCE"', None, None,
     f"keyword 'PRÎCE' is that of rule 1 (line 1): {{first}}; {SPARE}"),
    # A keyword rule answers a button's payload too.
    ('keyword = "menu"', 'postback = "MENU"', None, "whatsapp",
     "postback 'MENU' is the keyword of rule 1 (line 1), which answers that payload: "
     "{first}; put this rule before it (the button then gets this reply, a text that)"),
    ('postback = "YES-42"', 'postback = "yes-42"', "whatsapp", "whatsapp",
     f"postback 'yes-42' is that of rule 1 (line 1): {{first}}; {SPARE}"),
    # Every text beginning "order status" begins "order".
    ('prefix = "order"', 'prefix = "Order status"', None, None,
     "prefix 'Order status' begins with rule 1 (line 1)'s prefix 'order': {first}; put this "
     "rule before it, or give each its channel"),
    ('prefix = "order"', 'prefix = "ORDER"', None, None,
     f"prefix 'ORDER' begins with rule 1 (line 1)'s prefix 'order': {{first}}; {SPARE}"),
]


@pytest.mark.parametrize(("first", "second", "first_channel", "second_channel", "problem"),
                         SHADOWED)
def test_a_rule_an_earlier_rule_always_answers_first_is_refused_naming_both(
        tmp_path: Path, first: str, second: str, first_channel: str | None,
        second_channel: str | None, problem: str) -> None:
    """It loaded, and never answered: first match wins, so its reply was never sent."""
    def channel(name: str | None) -> str:
        return f'channel = "{name}"\n' if name else ""

    path = tmp_path / "rules.toml"
    path.write_text(f'[[accounts.acme.rules]]\n{first}\n{channel(first_channel)}reply = "1"\n\n'
                    f'[[accounts.acme.rules]]\n{second}\n{channel(second_channel)}reply = "2"\n',
                    encoding="utf-8")
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    line = 6 if first_channel else 5
    first = "rule 1 answers every message this rule would, first"
    assert str(caught.value) == (
        f"{path}: account 'acme': rule 2 (line {line}): {problem.format(first=first)}")


@pytest.mark.parametrize(("first", "second", "first_channel", "second_channel"), [
    # Another channel, or only some of the second's: the second answers the rest.
    ('keyword = "menu"', 'keyword = "menu"', "whatsapp", None),
    ('keyword = "menu"', 'keyword = "menu"', "whatsapp", "sms"),
    ('prefix = "order"', 'prefix = "order"', "telegram", "sms"),
    # Not the same words.
    ('keyword = "price"', 'keyword = "prices"', None, None),
    ('prefix = "order status"', 'prefix = "order"', None, None),
    ('postback = "menu"', 'keyword = "menu"', None, None),  # the keyword's text, answered
    ('prefix = "price"', 'keyword = "price"', None, None),  # "«Price»" is not "price..."
])
def test_rules_that_each_answer_some_message_still_load(
        first: str, second: str, first_channel: str | None, second_channel: str | None
        ) -> None:
    def rule(matcher: str, channel: str | None, reply: str) -> dict[str, str]:
        key, value = matcher.split(" = ")
        return {key: value.strip('"'), "reply": reply} | ({"channel": channel} if channel
                                                          else {})

    account = parse_rules({"accounts": {"acme": {"rules": [
        rule(first, first_channel, "1"), rule(second, second_channel, "2")]}}}
    ).accounts["acme"]
    assert len(account.rules) == 2


def test_a_keyword_of_several_words_is_warned_of_and_still_answers_its_payload(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """"opening hours" loaded silently and answered no text (a message's first word is
    compared with it), only a button with that payload. Loaded as before (such buttons
    exist), with a warning naming the account, the rule and the keyword."""
    path = tmp_path / "rules.toml"
    path.write_text('[[accounts.acme.rules]]\nkeyword = "price"\nreply = "From 10 EUR"\n\n'
                    '[[accounts.acme.rules]]\nkeyword = "opening hours"\nreply = "9-17"\n',
                    encoding="utf-8")
    account = RulesSource(path, check_every_s=0).rules_for("acme")
    warned = [r.getMessage() for r in caplog.records if "more than one word" in r.getMessage()]
    assert len(warned) == 1
    assert all(f"'{field}': {value!r}" in warned[0] for field, value in (
        ("account", "acme"), ("rule", 2), ("keyword", "opening hours")))
    assert keyword_reply(inbound("opening hours"), account) is None
    button = inbound("Opening hours").model_copy(update={"postback": "OPENING HOURS"})
    decision = keyword_reply(button, account)
    assert decision is not None and decision.reply == "9-17"


@pytest.mark.parametrize(("written", "named"), [
    ("facebook", "messenger"), ("viber_bm", "viber"), ("instagram_dm", "instagram"),
    ("apple_mb", "apple"), ("sms-", "sms")])
def test_a_channel_events_call_by_another_name_is_refused_naming_it(written: str,
                                                                    named: str) -> None:
    """A provider's label of a channel loaded, and the rule answered nothing: events name
    the channel as the normalizers do (a Facebook message is on "messenger")."""
    with pytest.raises(RulesError) as caught:
        parse_rules({"accounts": {"acme": {"rules": [
            {"keyword": "menu", "channel": written, "reply": "Menu"}]}}}, "bots.toml")
    assert str(caught.value) == (f"bots.toml: account 'acme': rule 1.channel: channel "
                                 f"{written!r} matches no event: events call it {named!r}")


@pytest.mark.parametrize("written", ["messenger", "whatsapp", "sms", "googlebm"])
def test_a_channel_as_events_name_it_loads(written: str) -> None:
    """Also one no normalizer names yet: a provider's new label is its channel."""
    account = parse_rules({"accounts": {"acme": {"rules": [
        {"keyword": "menu", "channel": written, "reply": "Menu"}]}}}).accounts["acme"]
    assert account.rules[0].rule.channel == written


@pytest.mark.parametrize(("word", "texts"), [
    ("ARRET!", ("arret", "Arret.", "ARRET!", "arret!! merci")),
    ("Stopp.", ("stopp", "STOPP")),
    ("\u200bARRET", ("arret", "ARRET")),  # a zero-width space copied in with it
])
def test_a_stop_keyword_written_with_punctuation_opts_out_the_word_without_it(
        word: str, texts: tuple[str, ...]) -> None:
    """"ARRET!" opted out only a contact who wrote "ARRET!" to the letter: their ARRET, read
    without punctuation around it (as STOP is), was kept apart from it."""
    account = parse_rules({"accounts": {"acme": {"extra_stop_keywords": [word]}}}
                          ).accounts["acme"]
    for text in texts:
        decision = compliance(inbound(text), account)
        assert decision is not None and decision.opt_out is True, text


def test_a_stop_keyword_of_a_symbol_alone_opts_out_that_symbol_only() -> None:
    """Read without punctuation and symbols, "🛑" is nothing: that is not taken as a stop
    word, or every message without words (a photo, an emoji) would opt out."""
    account = parse_rules({"accounts": {"acme": {"extra_stop_keywords": ["🛑"]}}}
                          ).accounts["acme"]
    stopped = compliance(inbound("🛑"), account)
    assert stopped is not None and stopped.opt_out is True
    for text in ("", "   ", "hello", "👍", "!"):
        assert compliance(inbound(text), account) is None, text


def test_a_keyword_rule_on_a_stop_keyword_written_with_punctuation_is_refused() -> None:
    """Compliance now answers "arret" for the stop keyword "ARRET!": the rule would be dead."""
    with pytest.raises(RulesError) as caught:
        parse_rules({"accounts": {"acme": {"extra_stop_keywords": ["ARRET!"], "rules": [
            {"keyword": "arret", "reply": "x"}]}}}, "bots.toml")
    assert "rule 1: keyword 'arret' is the stop word 'arret'" in str(caught.value)


def test_a_rule_whose_reply_is_empty_answers_its_messages_with_nothing() -> None:
    """As README *Keyword rules* says: its messages get no reply, and not the fallback (a
    contact's "thanks" left unanswered, not told it is no keyword)."""
    account = parse_rules({"accounts": {"acme": {"fallback": "Not a keyword. Reply HELP.",
                                                 "rules": [{"keyword": "thanks", "reply": ""}]}}}
                          ).accounts["acme"]
    decision = keyword_reply(inbound("Thanks!"), account)
    assert decision is not None and decision.purpose == "rule-1" and decision.reply == ""
    other = keyword_reply(inbound("hello"), account)
    assert other is not None and other.reply == "Not a keyword. Reply HELP."
