"""Keyword rules, templates and compliance decisions (pure: no broker)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from consumers.bots import decide as bot_decide
from consumers.bots import words as bot_words
from consumers.bots.decide import compliance, keyword_reply, provider_opt_out, should_answer
from consumers.bots.rule_schema import AccountRules, Rule
from consumers.bots.rules import RulesError, load_rules, parse_rules
from consumers.bots.templates import ECHO_CHARS, Template, TemplateError, bounded
from consumers.bots.words import fold
from normalizers import normalize
from switchboard.commands import CommandKind
from switchboard.events import Media, MessageEvent
from tests.fixtures import Fixture, load_fixtures

RULES = parse_rules({"accounts": {"acme": {
    "help_text": "Acme help for {from}",
    "fallback": "Sorry, '{text}' is not a keyword. Reply HELP.",
    "extra_stop_keywords": ["ARRET"],
    "own_numbers": ["+15550000000"],
    "rules": [
        {"keyword": "price", "reply": "Prices for {rest}: from 10 EUR"},
        {"keyword": "menu", "channel": "whatsapp", "reply": "WhatsApp menu"},
        {"prefix": "order", "reply": "Order {rest} received"},
        {"regex": r"^track (?P<code>\w+)$", "reply": "Parcel {code} is on its way"},
        {"postback": "YES-42", "reply": "Thanks for confirming"},
    ],
}}})
ACME = RULES.accounts["acme"]


def inbound(text: str | None = None, postback: str | None = None, channel: str = "sms",
            sender: str = "+4179000111") -> MessageEvent:
    return MessageEvent.model_validate({
        "id": uuid.uuid4(), "type": "message.inbound", "provider": "infobip", "account": "acme",
        "channel": channel, "direction": "inbound", "from": sender, "to": "+15550000000",
        "text": text, "postback": postback, "received_at": datetime.now(UTC), "raw_id": "r"})


@pytest.mark.parametrize(
    ("text", "postback", "channel", "expected"),
    [
        ("PRICE shoes", None, "sms", "Prices for shoes: from 10 EUR"),
        ("prîce  shoes", None, "sms", "Prices for shoes: from 10 EUR"),  # accents, spacing
        ("menu", None, "sms", "Sorry, 'menu' is not a keyword. Reply HELP."),
        ("menu", None, "whatsapp", "WhatsApp menu"),
        ("Order 1234", None, "sms", "Order 1234 received"),
        ("track AB12", None, "sms", "Parcel AB12 is on its way"),
        ("Yes", "yes-42", "whatsapp", "Thanks for confirming"),
        ("hello there", None, "sms", "Sorry, 'hello there' is not a keyword. Reply HELP."),
        # Punctuation around the keyword, as compliance ignores it: "Price?" got the fallback.
        ("Price?", None, "sms", "Prices for : from 10 EUR"),
        ("\u00bfPRICE? shoes", None, "sms", "Prices for shoes: from 10 EUR"),
        ("prices", None, "sms", "Sorry, 'prices' is not a keyword. Reply HELP."),
        ("price-list", None, "sms", "Sorry, 'price-list' is not a keyword. Reply HELP."),
    ],
)
def test_first_matching_rule_or_fallback(text: str, postback: str | None, channel: str,
                                         expected: str) -> None:
    decision = keyword_reply(inbound(text, postback, channel), ACME)
    assert decision is not None and decision.reply == expected


PREFIXES = parse_rules({"accounts": {"acme": {"rules": [
    {"prefix": prefix, "reply": "{keyword}|{rest}"} for prefix in ("order", "Straße", "istanbul")
]}}}).accounts["acme"]


@pytest.mark.parametrize(
    ("text", "keyword", "rest"),
    [
        ("Order 12", "Order", "12"),
        ("\u00d6rder 12", "\u00d6rder", "12"),  # NFC: one character for the Ö
        ("O\u0308rder 12", "O\u0308rder", "12"),  # NFD: O and a combining diaeresis
        ("O\u0308rder12", "O\u0308rder", "12"),
        ("STRASSE 5", "STRASSE", "5"),
        ("Stra\u00dfe5", "Stra\u00dfe", "5"),  # ß folds to two characters
        ("\u0130stanbul 3", "\u0130stanbul", "3"),  # NFC İ
        ("I\u0307stanbul 3", "I\u0307stanbul", "3"),  # NFD İ: I and a combining dot
    ],
)
def test_a_prefix_splits_the_original_text_where_the_folded_match_ends(text: str, keyword: str,
                                                                        rest: str) -> None:
    decision = keyword_reply(inbound(text), PREFIXES)
    assert decision is not None
    assert (decision.values["keyword"], decision.values["rest"]) == (keyword, rest)
    assert decision.reply == f"{keyword}|{rest}"


@pytest.mark.parametrize(
    ("text", "purpose", "opt_out", "kind"),
    [
        ("STOP", "opt-out", True, CommandKind.OPT_OUT_CONFIRMATION),
        ("unsubscribe please", "opt-out", True, CommandKind.OPT_OUT_CONFIRMATION),
        ("Arrêt", "opt-out", True, CommandKind.OPT_OUT_CONFIRMATION),
        ("start", "opt-in", False, CommandKind.MESSAGE),
        ("UNSTOP", "opt-in", False, CommandKind.MESSAGE),
        ("help", "help", None, CommandKind.HELP),
    ],
)
def test_compliance_keywords(text: str, purpose: str, opt_out: bool | None,
                             kind: CommandKind) -> None:
    decision = compliance(inbound(text), ACME)
    assert decision is not None
    assert (decision.purpose, decision.opt_out, decision.kind) == (purpose, opt_out, kind)
    if purpose == "help":
        assert decision.reply == "Acme help for +4179000111"


def test_ordinary_text_is_not_compliance_and_own_numbers_are_ignored() -> None:
    assert compliance(inbound("stopwatch for sale"), ACME) is None
    assert not should_answer(inbound("hi", sender="+15550000000"), ACME)
    assert should_answer(inbound("hi"), ACME)


@pytest.mark.parametrize("written", ["15550000001", "+1 555 000 0001", "0015550000001"])
def test_own_numbers_match_however_the_rules_file_spells_them(written: str) -> None:
    account = parse_rules({"accounts": {"acme": {"own_numbers": [written]}}}).accounts["acme"]
    assert not should_answer(inbound("hi", sender="+15550000001"), account)


def test_an_own_numeric_platform_id_matches_as_events_spell_it() -> None:
    # A Telegram bot's id is no phone number: its events carry it without a "+".
    account = parse_rules({"accounts": {"acme": {"own_numbers": ["7933779519"]}}}).accounts[
        "acme"]
    assert not should_answer(inbound("hi", channel="telegram", sender="7933779519"), account)


OPT_OUT_FIXTURES = {"bird/legacy_status_stop_103", "bird/channels_sms_outbound_opted_out_103",
                    "bird/platform_sms_rejected_opted_out", "infobip/sms-delivery-opted-out-603"}


@pytest.mark.parametrize("fixture", [f for f in load_fixtures() if f.spec.get("events")],
                         ids=lambda f: f.id)
def test_provider_opt_outs_are_the_reports_that_say_so(fixture: Fixture) -> None:
    # Table-driven over every provider's fixtures: no report is taken for an opt-out that
    # is not one (that would silence a contact).
    signals = [provider_opt_out(event) for event in normalize(fixture.request())]
    assert signals and all(s == (fixture.id in OPT_OUT_FIXTURES) for s in signals)


def test_a_report_from_a_provider_this_version_does_not_know_is_no_opt_out() -> None:
    """Events written by a newer Switchboard may name a provider added since: the bots must
    read them, not fail and dead-letter them."""
    report = MessageEvent.model_validate({
        "id": uuid.uuid4(), "type": "message.status", "provider": "added-later",
        "account": "acme", "channel": "sms", "direction": "outbound", "message_id": "m-1",
        "status": "failed", "error": {"code": "103", "permanent": True},
        "received_at": datetime.now(UTC), "raw_id": "raw-1"})
    assert provider_opt_out(report) is False


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"rules": [{"keyword": "a", "prefix": "b", "reply": "x"}]},
         "rule 1: give exactly one of keyword, prefix, regex, postback"),
        ({"rules": [{"reply": "x"}, {"regex": "(", "reply": "x"}]}, "rule 1"),
        ({"rules": [{"keyword": "a", "reply": "x"}, {"regex": "(", "reply": "x"}]},
         "rule 2: regex '(' is invalid"),
        ({"rules": [{"keyword": "a", "reply": "Hi {nmae}"}]}, "rule 1: template"),
        ({"fallback": "{text.__class__}"}, "is not a plain name"),
        ({"rules": [{"keyword": "a"}]}, "rule 1.reply: Field required"),
        ({"colour": "blue"}, "colour: Extra inputs are not permitted"),
        ({"rules": [{"keyword": "a", "channel": "WhatsApp", "reply": "x"}]},
         "rule 1.channel: channel 'WhatsApp' matches no event"),
        # Only marks folds to nothing: it would opt out (or answer) every emoji-only message.
        ({"extra_stop_keywords": ["\u0301"]}, "stop keyword '\u0301' is only accents or marks"),
        ({"rules": [{"keyword": "\u0301\u0308", "reply": "x"}]},
         "rule 1: keyword '\u0301\u0308' is only accents or marks"),
        ({"rules": [{"prefix": "\u0301", "reply": "x"}]}, "rule 1: prefix '\u0301' is only"),
        ({"compliance_reply_limit": -1},
         "compliance_reply_limit: Input should be greater than or equal to 0"),
        ({"compliance_reply_limit": 1.5}, "compliance_reply_limit: Input should be a valid int"),
    ],
)
def test_invalid_rules_name_file_account_rule_and_problem(rules: dict[str, Any],
                                                          message: str) -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules({"accounts": {"acme": rules}}, "bots.toml")
    assert str(caught.value).startswith("bots.toml: account 'acme': ")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ({"rules": [{"keyword": "price", "reply": "x"}, {"keyword": "Cancel", "reply": "x"}]},
         "rule 2: keyword 'Cancel' is the stop word 'cancel'"),
        ({"rules": [{"keyword": "Stärt!", "reply": "x"}]},
         "rule 1: keyword 'Stärt!' is the start word 'start'"),
        ({"rules": [{"keyword": "info", "reply": "x"}], "extra_stop_keywords": ["INFO"]},
         "is the stop word 'info', which compliance answers before any rule: the rule would "
         "never answer a message that says it; pick another keyword or take it out of "
         "extra_stop_keywords"),
        ({"rules": [{"keyword": "help", "reply": "x"}]}, "pick another keyword (the built-in"),
    ],
)
def test_a_keyword_rule_compliance_would_always_answer_first_is_refused(
        rules: dict[str, Any], message: str) -> None:
    """"cancel 12" opts the contact out: a keyword rule "cancel" would be dead, silently."""
    with pytest.raises(RulesError) as caught:
        parse_rules({"accounts": {"acme": rules}}, "bots.toml")
    assert str(caught.value).startswith("bots.toml: account 'acme': ")
    assert message in str(caught.value)


def test_a_compliance_reply_limit_of_0_or_none_is_the_default_not_silence() -> None:
    """Carriers require HELP answered: 0 is the default (5), as 0 is for reply_limit."""
    rules = parse_rules({"accounts": {"a": {"compliance_reply_limit": 0}, "b": {},
                                      "c": {"compliance_reply_limit": 1}}})
    assert [rules.accounts[name].compliance_reply_limit for name in "abc"] == [5, 5, 1]


def test_a_reload_with_a_shadowed_keyword_keeps_the_previous_rules(tmp_path: Path) -> None:
    from consumers.bots.handler import RulesSource

    path = tmp_path / "rules.toml"
    path.write_text('[[accounts.acme.rules]]\nkeyword = "order"\nreply = "Order {rest}"\n')
    source = RulesSource(path, check_every_s=0)
    path.write_text('[[accounts.acme.rules]]\nkeyword = "cancel"\nreply = "Cancelled"\n')
    source.request_reload()
    assert [rule.keyword for rule in source.rules_for("acme").rules] == ["order"]


def test_a_misspelt_accounts_table_is_refused_not_ignored() -> None:
    with pytest.raises(RulesError) as caught:
        parse_rules({"account": {"acme": {"fallback": "Reply HELP."}}}, "bots.toml")
    assert str(caught.value).startswith("bots.toml: unknown top-level key(s) 'account'")


def test_templates_are_plain_substitution_only() -> None:
    assert Template("Hi {from}, {{literal}}").render({"from": "+1"}) == "Hi +1, {literal}"
    for bad in ["{from!r}", "{from:>10}", "{0}", "{from[0]}", "{unknown}", "{"]:
        with pytest.raises(TemplateError):
            Template(bad)


def test_the_example_rules_load_and_show_every_kind_of_setting() -> None:
    """README calls examples/rules.toml the full example: it must load and use what it shows."""
    rules = load_rules(Path(__file__).resolve().parents[2] / "examples" / "rules.toml")
    configs = [account.config for account in rules.accounts.values()]
    assert set().union(*(c.model_fields_set for c in configs)) == set(AccountRules.model_fields)
    assert set().union(*(r.model_fields_set for c in configs for r in c.rules)) == \
        set(Rule.model_fields)


def test_an_autoreply_worker_without_any_auto_reply_says_why_it_is_idle() -> None:
    from consumers.workers import _no_auto_reply

    without = parse_rules({"accounts": {"*": {"help_text": "Reply STOP to opt out."}}})
    assert "no account has auto_reply" in (_no_auto_reply(without, ["acme"]) or "")
    with_one = parse_rules({"accounts": {"acme": {"auto_reply": {"text": "Thanks!"}}}})
    assert _no_auto_reply(with_one, ["acme"]) is None


@pytest.mark.parametrize(("text", "opt_out"), [
    ("Stop.", True), ("STOP!", True), ("stop, please", True), ("Unsubscribe!", True),
    ("END.", True), ("\u201cSTOP\u201d", True), ("STOP\u200b", True),
    ("Arrêt!", True), ("START!", False), ("unstop.", False),
    ("Stop,please", True), ("STOP.Thank you", True), ("Quit!!!now", True),
    ("STOP\x00", True), ("start,thanks", False),
])
def test_a_compliance_keyword_with_punctuation_around_it_still_counts(text: str,
                                                                      opt_out: bool) -> None:
    # "Stop please" opts out (first word); "Stop." must too: people end words with a dot.
    decision = compliance(inbound(text), ACME)
    assert decision is not None and decision.opt_out is opt_out


@pytest.mark.parametrize(("text", "keyword", "rest"), [
    ("Revoke", "Revoke", ""), ("OPTOUT", "OPTOUT", ""), ("Opt-out.", "Opt-out.", ""),
    ("opt out", "opt out", ""), ("Opt  out, please", "Opt out,", "please"),
    ("OPT OUT!", "OPT OUT!", ""),
])
def test_the_fcc_revocation_words_opt_out(text: str, keyword: str, rest: str) -> None:
    """Stop, quit, end, revoke, opt out, cancel and unsubscribe revoke consent (FCC, from
    April 2025): REVOKE and OPT OUT were answered with the fallback, and the texts went on."""
    decision = compliance(inbound(text), ACME)
    assert decision is not None and decision.opt_out is True
    assert (decision.values["keyword"], decision.values["rest"]) == (keyword, rest)


@pytest.mark.parametrize("text", ["opt in", "Opt outside", "option out", "out opt", "opt"])
def test_words_merely_near_opt_out_do_not_opt_out(text: str) -> None:
    assert compliance(inbound(text), ACME) is None


def test_help_with_a_question_mark_is_help_and_words_merely_starting_so_are_not() -> None:
    decision = compliance(inbound("HELP?"), ACME)
    assert decision is not None and decision.purpose == "help"
    assert compliance(inbound("stop-motion film"), ACME) is None
    assert compliance(inbound("stopwatch."), ACME) is None


HINDI = parse_rules({"accounts": {"acme": {"extra_stop_keywords": ["बंद"]}}}).accounts["acme"]


@pytest.mark.parametrize("text", ["बंदा कौन है?", "बंदी की खबर", "बंदे आ गए"])
def test_a_word_is_not_cut_to_a_stop_keyword_by_stripping_its_vowel_sign(text: str) -> None:
    # Devanagari vowel signs (ा ी े: category Mc) survive fold() and are part of the word:
    # "बंदा" (a guy) is not "बंद" (stop).
    assert compliance(inbound(text), HINDI) is None


def test_punctuation_around_a_non_latin_keyword_still_counts() -> None:
    decision = compliance(inbound("बंद!"), HINDI)
    assert decision is not None and decision.opt_out is True
    emoji = compliance(inbound("STOP\U0001F6D1\ufe0f"), HINDI)  # symbol + variation selector
    assert emoji is not None and emoji.opt_out is True


@pytest.mark.parametrize(("text", "keyword", "rest"), [
    ("price,shoes", "price", "shoes"), ("PRICE:shoes", "PRICE", "shoes"),
    ("price...shoes and socks", "price", "shoes and socks"),
    ("\u00bfprice?shoes", "\u00bfprice", "shoes"),
    ("Price? shoes", "Price?", "shoes"), ("price, shoes", "price,", "shoes"),
    ("\uff30\uff32\uff29\uff23\uff25\uff0cshoes", "\uff30\uff32\uff29\uff23\uff25", "shoes"),
])
def test_a_keyword_rule_reads_the_rest_after_punctuation_typed_without_a_space(
        text: str, keyword: str, rest: str) -> None:
    """"price,shoes" matched the rule "price" but left {rest} empty: "Prices for : ..."."""
    decision = keyword_reply(inbound(text), ACME)
    assert decision is not None and decision.purpose == "rule-1"
    assert (decision.values["keyword"], decision.values["rest"]) == (keyword, rest)


@pytest.mark.parametrize(("text", "purpose", "keyword", "rest"), [
    ("Stop,please", "opt-out", "Stop", "please"),
    ("STOP.Thank you", "opt-out", "STOP", "Thank you"),
    ("HELP!me", "help", "HELP", "me"), ("start,thanks", "opt-in", "start", "thanks"),
    ("Opt out,please", "opt-out", "Opt out", "please"), ("HELP!", "help", "HELP!", ""),
    ("stop,", "opt-out", "stop,", ""),
])
def test_a_compliance_keyword_typed_with_punctuation_and_no_space_is_the_keyword_alone(
        text: str, purpose: str, keyword: str, rest: str) -> None:
    decision = compliance(inbound(text), ACME)
    assert decision is not None and decision.purpose == purpose
    assert (decision.values["keyword"], decision.values["rest"]) == (keyword, rest)


@pytest.mark.parametrize("text", [
    "ST\u200bOP", "S\u00adTOP", "STO\u2060P", "\u200bS\u200bT\u200bO\u200bP\u200b", "Stop\u034f",
    "ST\ufe0fOP", "STOP\u3164", "opt\u200bout", "STOP\u200bplease", "stop\u200d,thanks",
    "opt\u2011out", "opt\u2010out", "opt\u2013out", "opt\u2014out", "OPT_OUT", "opt\u2212out",
])
def test_invisible_characters_and_other_dashes_inside_a_stop_word_still_opt_out(
        text: str) -> None:
    """A zero-width space, soft hyphen or joiner pasted inside STOP (a copied text, a
    keyboard's word joiner) is invisible to the contact, who sees STOP: that was no opt-out.
    Nor was OPT-OUT written with a non-breaking hyphen, a dash or an underscore."""
    decision = compliance(inbound(text), ACME)
    assert decision is not None and decision.opt_out is True


@pytest.mark.parametrize("text", ["stopwatch", "stop-motion film", "stop\u2011motion",
                                  "opt\u200bin", "stop1", "\u200bstopwatch"])
def test_words_that_only_start_with_stop_do_not_opt_out(text: str) -> None:
    assert compliance(inbound(text), ACME) is None


def test_a_joiner_inside_a_word_does_not_end_it() -> None:
    # ZWJ/ZWNJ shape conjuncts and keep Persian words together: "बंद" + virama + ZWJ + "ध"
    # is one word, not the stop keyword "बंद" and more (fold() drops the virama).
    assert compliance(inbound("\u092c\u0902\u0926\u094d\u200d\u0927"), HINDI) is None
    assert compliance(inbound("stop\u200cwatch"), ACME) is None


@pytest.mark.parametrize("text", [
    "S\u0422\u041e\u0420",  # S and Cyrillic TE, O, ER
    "\u0405\u0422\u041e\u0420",  # all Cyrillic: Macedonian DZE, TE, O, ER
    "\u0405\u0422\u039f\u03a1",  # Cyrillic DZE, TE; Greek OMICRON, RHO
    "\u0415ND", "\u0415\u039d\u0044.",  # Cyrillic IE; Greek NU
    "\ua731\u1d1b\u1d0f\u1d18",  # small capitals, as "fancy text" generators write them
    "\U0001f1f8\U0001f1f9\U0001f1f4\U0001f1f5",  # regional indicator letters
    "\U0001f182\U0001f183\U0001f17e\U0001f17f",  # negative squared letters
    "\U0001f162\U0001f163\U0001f15e\U0001f15f",  # negative circled letters
    "STOP\U0001f6d1please", "Stop\U0001f44d\U0001f3fdthanks",
])
def test_a_stop_word_in_lookalike_letters_or_with_an_emoji_inside_opts_out(text: str) -> None:
    """Letters that look like Latin ones (Cyrillic, Greek, small capitals, the letter emoji)
    read as STOP to the contact: they were no opt-out. Nor was an emoji typed between STOP
    and the next word."""
    decision = compliance(inbound(text), ACME)
    assert decision is not None and decision.opt_out is True


def test_an_own_stop_keyword_matches_in_lookalike_letters_too() -> None:
    stop = "\u0441\u0442\u043e\u043f"  # Russian for stop
    russian = parse_rules({"accounts": {"acme": {"extra_stop_keywords": [stop]}}}).accounts["acme"]
    for text in ["\u0421\u0422\u041e\u041f", "CTO\u041f", "ct\u043e\u043f!"]:  # Latin C, T
        decision = compliance(inbound(text), russian)
        assert decision is not None and decision.opt_out is True, text


@pytest.mark.parametrize("text", ["\u0441\u0442\u043e\u043f", "\u0441\u0442\u043e\u0440",
                                  "\u03c3\u03c4\u03bf\u03c0", "\u0435\u043d\u0434"])
def test_words_of_other_scripts_are_not_taken_for_stop(text: str) -> None:
    # Russian for stop is no built-in keyword (extra_stop_keywords adds it); Cyrillic ES, TE,
    # O, ER reads CTOP.
    assert compliance(inbound(text), ACME) is None


@pytest.mark.parametrize("text", ["a" * 1_000_000, "stop" + "!" * 1_000_000,
                                  "price," + "x" * 1_000_000, "\u200b" * 1_000_000])
def test_a_megabyte_without_a_space_is_read_at_once(text: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A webhook body may be a megabyte: a first word that long took seconds of the event loop
    to compare (each form a pass over all of it, for compliance and again for each rule), so
    only a bounded piece of it is folded into forms (counted here, not timed)."""
    folded: list[int] = []

    def counting_fold(value: str) -> str:
        folded.append(len(value))
        return fold(value)

    monkeypatch.setattr(bot_words, "fold", counting_fold)
    compliance(inbound(text), ACME)
    keyword_reply(inbound(text), ACME)
    assert folded and max(folded) <= 2 * bot_words.WORD_CHARS


@pytest.mark.parametrize(("text", "opt_out"), [
    ("!" * 4000 + "STOP", True), ("STOP" + "!" * 10_000, True), ("STOP," + "x" * 10_000, True),
    ("STOP" + "x" * 10_000, False), ("\U0001f6d1" * 2000 + "Stop" + "\u200b" * 5000, True),
    ("\u00ab" * 300 + "price" + "\u00bb" * 300, False),
])
def test_a_long_word_is_still_read_as_a_short_one_is(text: str, opt_out: bool) -> None:
    decision = compliance(inbound(text), ACME)
    assert (decision is not None and decision.opt_out is True) is opt_out


@pytest.mark.parametrize("text", ["", "   ", "\n\t", "\u00a0"])
def test_a_blank_message_gets_no_fallback(text: str) -> None:
    # An empty text had none; a blank one had "Sorry, '   ' is not a keyword", paid for.
    assert keyword_reply(inbound(text), ACME) is None


ECHOES = parse_rules({"accounts": {"acme": {
    "fallback": "Sorry, '{text}' is not a keyword.",
    "rules": [
        {"keyword": "price", "reply": "Prices for {rest}"},
        {"prefix": "order", "reply": "Order {rest}"},
        {"regex": r"^track (?P<code>.+)$", "reply": "Parcel {code}"},
        {"keyword": "info", "reply": "{keyword}"},
    ],
}}}).accounts["acme"]


@pytest.mark.parametrize(("text", "template"), [
    ("a" * 2000, "Sorry, '{}' is not a keyword."),
    ("hello " * 200_000, "Sorry, '{}' is not a keyword."),  # about a megabyte, with spaces
    ("price " + "b" * 1_000_000, "Prices for {}"),
    ("order " + "c" * 5000, "Order {}"),
    ("track " + "d" * 5000, "Parcel {}"),
    ("info" + "!" * 5000, "{}"),  # the first word as written, punctuation and all
])
def test_what_the_contact_wrote_is_echoed_one_sms_long_at_most(text: str,
                                                              template: str) -> None:
    """The fallback's {text} was the whole message: 2,000 characters went back as 14 SMS
    parts, a megabyte as thousands, each paid for."""
    decision = keyword_reply(inbound(text), ECHOES)
    assert decision is not None and decision.reply is not None
    echoed = decision.reply.removeprefix(template.split("{}")[0]).removesuffix(
        template.split("{}")[1])
    assert len(echoed) <= ECHO_CHARS and echoed.endswith("...")
    assert echoed.removesuffix("...") in text


@pytest.mark.parametrize("name", ["from", "to", "account", "channel", "provider"])
def test_a_regex_group_named_as_an_address_or_name_field_is_echoed_one_sms_long_at_most(
        name: str) -> None:
    """Addresses and names go into a reply whole; a group of that name is what the contact
    wrote, and went in whole too: up to the 4,096 characters a regex reads."""
    account = parse_rules({"accounts": {"acme": {"rules": [
        {"regex": f"^say (?P<{name}>.+)", "reply": f"<{{{name}}}>"}]}}}).accounts["acme"]
    decision = keyword_reply(inbound("say " + "z" * 5000), account)
    assert decision is not None and decision.reply is not None
    assert decision.reply == "<" + "z" * (ECHO_CHARS - 3) + "...>"


def test_a_message_one_sms_long_is_echoed_whole() -> None:
    text = "x" * ECHO_CHARS
    decision = keyword_reply(inbound(text), ECHOES)
    assert decision is not None and decision.reply == f"Sorry, '{text}' is not a keyword."


@pytest.mark.parametrize(("value", "expected"), [
    ("e" * 158 + "\u0301" * 3, "e" * 157 + "..."),  # the accents stay with their letter
    ("e" * 157 + "\u0301" * 3 + "f", "e" * 156 + "..."),
    ("x" * 150 + "\U0001f469\u200d\U0001f467" * 5,  # emoji sequences stay whole
     "x" * 150 + "\U0001f469\u200d\U0001f467" * 2 + "..."),
    ("x" * 155 + "  " + "y" * 10, "x" * 155 + "..."),
    ("\u00e9" * 200, "\u00e9" * 157 + "..."),
    ("a" * 152 + "\U0001f1e8\U0001f1ed" * 5,  # a flag's two letters stay together
     "a" * 152 + "\U0001f1e8\U0001f1ed" * 2 + "..."),
    ("a" * 156 + "\U0001f44d\U0001f3fd" + "b" * 9,  # so do an emoji and its skin tone
     "a" * 156 + "..."),
])
def test_a_long_value_is_cut_between_characters_as_read(value: str, expected: str) -> None:
    assert bounded(value) == expected and len(bounded(value)) <= ECHO_CHARS


def test_an_address_or_name_goes_into_a_reply_whole() -> None:
    # Not what the contact wrote: an Apple Messages for Business address is 169 characters.
    address = "urn:mbid:" + "A" * 160
    assert Template("to {from} on {channel}").render({"from": address, "channel": "apple"}) \
        == f"to {address} on apple"


@pytest.mark.parametrize(("text", "rest"), [
    ("a" * 1_000_000, None), ("order " + "x" * 1_000_000, "x" * 1_000_000),
    ("order" + "\u0301" * 1_000_000 + " 12", None), ("O" + "\u0308" * 1_000_000 + "rder", None),
    ("\u00df" * 1_000_000, None),  # folds to twice its length
])
def test_a_prefix_rule_folds_only_what_the_longest_prefix_needs(
        text: str, rest: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A prefix rule folded the whole text, once per prefix rule: a megabyte held the event
    loop for each (counted here, not timed)."""
    folded: list[int] = []

    def counting_fold(value: str) -> str:
        folded.append(len(value))
        return fold(value)

    monkeypatch.setattr(bot_words, "fold", counting_fold)
    monkeypatch.setattr(bot_decide, "fold", counting_fold)
    decision = keyword_reply(inbound(text), PREFIXES)
    assert sum(folded) <= 4 * bot_words.WORD_CHARS
    folded.clear()  # and with keyword and postback rules, a button's postback as long
    keyword_reply(inbound(text, postback=text), ACME)
    assert sum(folded) <= 8 * bot_words.WORD_CHARS
    if rest is not None:
        assert decision is not None and decision.values["rest"] == rest
        assert decision.values["keyword"] == "order"


def test_a_prefix_matches_past_many_marks_up_to_the_bound() -> None:
    marked = "O" + "\u0308" * bot_words.WORD_CHARS + "rder 12"
    decision = keyword_reply(inbound(marked), PREFIXES)
    assert decision is not None and decision.values["rest"] == "12"


@pytest.mark.parametrize("text", ["INFO", "info", "Info?", "INFO.", "\uff29\uff2e\uff26\uff2f",
                                  "\u0456nfo", "info please"])
def test_info_gets_the_help_text_as_us_carriers_read_it(text: str) -> None:
    """CTIA's handbook and Twilio's defaults read INFO as HELP: it got the fallback (or, from an
    opted-out contact, nothing)."""
    decision = compliance(inbound(text), ACME)
    assert decision is not None and decision.kind is CommandKind.HELP
    assert decision.reply == "Acme help for +4179000111" and decision.opt_out is None


@pytest.mark.parametrize("text", ["info@example.com", "information", "info-desk", "infos"])
def test_a_word_that_only_starts_with_info_is_not_info(text: str) -> None:
    assert compliance(inbound(text), ACME) is None


@pytest.mark.parametrize("rule", [
    {"keyword": "info", "reply": "Open 9-17"},
    {"keyword": "INFO", "channel": "sms", "reply": "Open 9-17"},
    {"prefix": "info", "reply": "Open 9-17"},
    {"regex": r"^info\b", "reply": "Open 9-17"},
    {"postback": "OPENING-HOURS", "reply": "Open 9-17"},  # a button titled "Info"
])
def test_an_accounts_own_info_rule_still_loads_and_answers_info(rule: dict[str, Any]) -> None:
    """Rules files had `info` rules before INFO was read as HELP: such a file is not refused
    (as a rule on HELP is), and its rule answers as it did."""
    account = parse_rules({"accounts": {"acme": {"rules": [rule]}}}).accounts["acme"]
    event = inbound("Info", postback="opening-hours")
    assert compliance(event, account) is None
    decision = keyword_reply(event, account)
    assert decision is not None and decision.reply == "Open 9-17"


def test_info_is_help_where_the_accounts_info_rule_is_for_another_channel() -> None:
    account = parse_rules({"accounts": {"acme": {"rules": [
        {"keyword": "info", "channel": "whatsapp", "reply": "Open 9-17"}]}}}).accounts["acme"]
    decision = compliance(inbound("INFO"), account)
    assert decision is not None and decision.kind is CommandKind.HELP


@pytest.mark.parametrize(("title", "payload"), [
    ("Abmelden", "STOP"), ("No more messages", "stop"), (None, "STOP"), ("Yes", "Unsubscribe"),
    ("Nein danke", "OPT_OUT"), ("\u2718", "opt out"), ("Non merci", "ARRET"),
    ("Don't text me", " STOP "), ("Leave", "StopAll"),
])
def test_a_button_whose_payload_is_a_stop_word_opts_out_whatever_its_title(
        title: str | None, payload: str) -> None:
    """The business made STOP the button's payload: pressing it asks to stop. Only the title
    (the text) was read, so "Abmelden" with payload STOP got the fallback, and texts went on."""
    decision = compliance(inbound(title, postback=payload), ACME)
    assert decision is not None and decision.opt_out is True
    assert decision.kind is CommandKind.OPT_OUT_CONFIRMATION
    assert decision.source == "postback" and decision.values["keyword"] == payload


@pytest.mark.parametrize("payload", [
    "STOP_REMINDERS_17", "BUS-STOP", "stop-motion", "nonstop", "stop.reminders", "STOP 2",
    "CANCEL", "END", "QUIT",  # a flow's own ids as often: "cancel the booking", "end the chat"
    "START", "HELP", "INFO",  # "Get started" buttons; a help menu of the bot's own
    "STOP" + "_" * 300 + "X",
])
def test_a_payload_that_is_no_whole_stop_word_or_an_ambiguous_one_does_nothing(
        payload: str) -> None:
    assert compliance(inbound("Choose", postback=payload), ACME) is None


def test_a_postback_rule_on_a_stop_payload_answers_it_as_written() -> None:
    """The rules' own answer to a payload (as the refusal of a keyword rule on STOP advises:
    write postback = 'stop') stays theirs."""
    account = parse_rules({"accounts": {"acme": {"rules": [
        {"postback": "STOP", "channel": "whatsapp", "reply": "Timer stopped"}]}}}
    ).accounts["acme"]
    event = inbound("Pause", postback="stop", channel="whatsapp")
    assert compliance(event, account) is None
    decision = keyword_reply(event, account)
    assert decision is not None and decision.reply == "Timer stopped"
    other_channel = compliance(inbound("Pause", postback="stop", channel="rcs"), account)
    assert other_channel is not None and other_channel.opt_out is True


def test_a_title_that_says_stop_opts_out_whatever_the_payload() -> None:
    decision = compliance(inbound("Stop reminders", postback="REMINDERS_OFF"), ACME)
    assert decision is not None and decision.opt_out is True and decision.source == "keyword"


def test_what_a_message_without_text_gets_from_the_keyword_bot() -> None:
    """As README *Keyword rules* says: no keyword or prefix rule matches it, a regex rule
    matching an empty text does if it holds media or a button, the fallback answers a photo
    (with {text} empty); neither answers a message with nothing in it (a contact card, a
    sign-in response) or a blank one."""
    photo = inbound(None).model_copy(update={"media": [
        Media(url="https://example.com/p.jpg", content_type="image/jpeg")]})
    assert compliance(photo, ACME) is None
    decision = keyword_reply(photo, ACME)
    assert decision is not None and decision.purpose == "fallback"
    assert decision.reply == "Sorry, '' is not a keyword. Reply HELP."
    assert keyword_reply(inbound(None), ACME) is None
    empty_text = parse_rules({"accounts": {"acme": {"rules": [
        {"keyword": "photo", "reply": "keyword"}, {"prefix": "p", "reply": "prefix"},
        {"regex": "^$", "reply": "Thanks for the photo"}]}}}).accounts["acme"]
    for event in (photo, inbound(None, postback="MENU")):
        decision = keyword_reply(event, empty_text)
        assert decision is not None and decision.reply == "Thanks for the photo"
    assert keyword_reply(inbound(None), empty_text) is None
    assert keyword_reply(inbound("  "), empty_text) is None


@pytest.mark.parametrize("pattern", [".*", "^", "\\S*", "x?"])
def test_a_catch_all_regex_does_not_answer_a_message_with_nothing_in_it(pattern: str) -> None:
    """It matched the empty text of a contact card or a sign-in response (or a blank text),
    which the fallback, documented so, does not answer: the contact got a reply to nothing."""
    account = parse_rules({"accounts": {"acme": {"rules": [
        {"regex": pattern, "reply": "We read every message"}]}}}).accounts["acme"]
    for nothing in (inbound(None), inbound(""), inbound(" \u3000\n")):
        assert keyword_reply(nothing, account) is None
    photo = inbound(None).model_copy(update={"media": [
        Media(url="https://example.com/p.jpg", content_type="image/jpeg")]})
    for something in (inbound("hi"), photo):
        decision = keyword_reply(something, account)
        assert decision is not None and decision.reply == "We read every message"
