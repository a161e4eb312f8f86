"""Regex rules: an account's pattern cannot hold the bot's event loop, and reads as re did."""

from __future__ import annotations

import re
import time
import tomllib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY

from consumers.bots import decide as bot_decide
from consumers.bots.decide import compliance, keyword_reply
from consumers.bots.rule_schema import compile_rule_regex
from consumers.bots.rules import RulesError, parse_rules
from switchboard.events import MessageEvent
from tests.unit.fakes import ModuleWith

ROOT = Path(__file__).resolve().parents[2]
# Backtracks exponentially in the text's length: without a time limit, sixty characters are
# centuries of backtracking, re's or regex's.
CATASTROPHIC = r"(a|aa)+$"
CRAFTED = "a" * 60 + "!"


def inbound(text: str, account: str = "acme") -> MessageEvent:
    return MessageEvent.model_validate({
        "id": uuid.uuid4(), "type": "message.inbound", "provider": "infobip",
        "account": account, "channel": "sms", "direction": "inbound", "from": "+4179000111",
        "to": "+15550000000", "text": text, "received_at": datetime.now(UTC), "raw_id": "r"})


def timeouts(account: str, rule: int) -> float:
    return REGISTRY.get_sample_value("switchboard_bot_regex_timeouts_total",
                                     {"account": account, "rule": str(rule)}) or 0.0


@pytest.fixture
def quick_limit(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A short limit (the test waits for it), and a log window of this test's own: another
    test's warning of the same rule would hold this one's back."""
    monkeypatch.setattr(bot_decide, "REGEX_TIMEOUT_S", 0.01)
    monkeypatch.setattr(bot_decide, "_timeout_log", bot_decide._OncePerWindow())
    yield


async def test_a_backtracking_regex_is_stopped_taken_as_no_match_and_the_next_rule_answers(
        quick_limit: None, caplog: pytest.LogCaptureFixture) -> None:
    """One account's pattern, hit by a contact's crafted text, held the event loop of the bot
    that serves every account: every account's STOPs and replies waited on it."""
    account = parse_rules({"accounts": {"acme": {"fallback": "Sorry.", "rules": [
        {"keyword": "price", "reply": "From 10 EUR"},
        {"regex": CATASTROPHIC, "reply": "Many a's"},
        {"regex": "a!$", "reply": "Ends in a!"},
    ]}}}).accounts["acme"]
    before = timeouts("acme", 2)
    for _ in range(3):  # a contact can send it again and again
        decision = keyword_reply(inbound(CRAFTED), account)
        assert decision is not None and decision.purpose == "rule-3"
        assert decision.reply == "Ends in a!"
    assert timeouts("acme", 2) - before == 3
    warnings = [r for r in caplog.records if "regex rule stopped at its time limit" in
                r.getMessage()]
    assert len(warnings) == 1  # once a minute per rule, not per message
    line = warnings[0].getMessage()
    assert "acme" in line and "rule" in line and "2" in line
    assert "aaaa" not in caplog.text  # never the contact's text
    assert "'more'" not in line


def test_a_regex_stopped_without_an_event_loop_is_taken_as_no_match_and_logged(
        quick_limit: None, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """keyword_reply is a pure function, called from a script as well (no event loop): its
    timeout warning, once a minute per rule, raised RuntimeError ('no running event loop')
    where the search was stopped. The next warning a minute on says how many it left out."""
    clock = [1000.0]
    monkeypatch.setattr(bot_decide, "time", ModuleWith(time, monotonic=lambda: clock[0]),
                        raising=False)
    account = parse_rules({"accounts": {"acme": {"fallback": "Sorry.", "rules": [
        {"regex": CATASTROPHIC, "reply": "Many a's"}]}}}).accounts["acme"]
    before = timeouts("acme", 1)
    for _ in range(3):
        decision = keyword_reply(inbound(CRAFTED), account)
        assert decision is not None and decision.purpose == "fallback"
    clock[0] += 60
    assert keyword_reply(inbound(CRAFTED), account) is not None
    assert timeouts("acme", 1) - before == 4
    warnings = [r.getMessage() for r in caplog.records
                if "regex rule stopped at its time limit" in r.getMessage()]
    assert len(warnings) == 2
    assert "'more'" not in warnings[0] and "'more': 2" in warnings[1]


async def test_a_stopped_regex_leaves_compliance_and_the_fallback_working(
        quick_limit: None) -> None:
    account = parse_rules({"accounts": {"*": {"fallback": "Sorry.", "rules": [
        {"regex": CATASTROPHIC, "reply": "Many a's"}]}}}).accounts["*"]
    before = timeouts("shop", 1)
    stop = compliance(inbound("STOP " + CRAFTED, "shop"), account)
    assert stop is not None and stop.opt_out is True
    # INFO is HELP unless a rule answers it: the stopped rule does not.
    info = compliance(inbound("info " + CRAFTED, "shop"), account)
    assert info is not None and info.purpose == "help"
    fallback = keyword_reply(inbound(CRAFTED, "shop"), account)
    assert fallback is not None and fallback.purpose == "fallback"
    assert timeouts("shop", 1) - before == 2  # counted for the account the message is for


async def test_an_info_a_rule_answers_runs_the_rules_once(quick_limit: None) -> None:
    """Compliance asks whether a rule answers an INFO, and the keyword bot then answers with
    that rule: each regex search before it ran twice, its time limit spent (and counted)
    twice per message."""
    account = parse_rules({"accounts": {"acme": {"rules": [
        {"regex": CATASTROPHIC, "reply": "Many a's"},
        {"keyword": "info", "reply": "Open 9-17"}]}}}).accounts["acme"]
    before = timeouts("acme", 1)
    event = inbound("INFO " + CRAFTED)  # the handler asks both of the same event
    assert compliance(event, account) is None
    decision = keyword_reply(event, account)
    assert decision is not None and (decision.purpose, decision.reply) == ("rule-2", "Open 9-17")
    assert timeouts("acme", 1) - before == 1
    # Another message (or the same one after a reload) is read afresh.
    again = keyword_reply(inbound("INFO " + CRAFTED), account)
    assert again is not None and again.purpose == "rule-2"
    assert timeouts("acme", 1) - before == 2


class Recording:
    """A rule's compiled pattern that notes how much text each search is given."""

    def __init__(self, pattern: Any) -> None:
        self.pattern = pattern
        self.lengths: list[int] = []
        self.groupindex = pattern.groupindex

    def search(self, text: str, **options: Any) -> Any:
        self.lengths.append(len(text))
        return self.pattern.search(text, **options)


@pytest.mark.parametrize("text", ["track " + "x" * 1_000_000, "x" * 1_000_000 + " end"])
def test_a_regex_reads_the_first_regex_chars_of_a_megabyte(text: str) -> None:
    """Ordinary patterns are often quadratic in the text (r"\\w+$" tries every start): over a
    megabyte, the webhook's cap, each would run until its time limit. Counted, not timed."""
    account = parse_rules({"accounts": {"acme": {"rules": [
        {"regex": r"(?P<word>\w+) end$", "reply": "{word}"},
        {"regex": r"^track\s+(?P<code>\w+)", "reply": "Parcel {code}"}]}}}).accounts["acme"]
    recorders = []
    for rule in account.rules:
        rule.pattern = recorder = Recording(rule.pattern)  # type: ignore[assignment]
        recorders.append(recorder)
    keyword_reply(inbound(text), account)
    seen = [length for recorder in recorders for length in recorder.lengths]
    assert seen and max(seen) == bot_decide.REGEX_CHARS


def test_a_message_of_every_channel_is_read_whole() -> None:
    """4096 characters: the longest WhatsApp or Telegram text. Its end still matches `$`."""
    account = parse_rules({"accounts": {"acme": {"rules": [
        {"regex": r"(?P<code>\d+)$", "reply": "Order {code}"}]}}}).accounts["acme"]
    text = "x" * (bot_decide.REGEX_CHARS - 5) + " 1234"
    decision = keyword_reply(inbound(text), account)
    assert decision is not None and decision.reply == "Order 1234"


def shipped_patterns() -> list[str]:
    """The regex rules of examples/rules.toml and of the README's example."""
    example = tomllib.loads((ROOT / "examples" / "rules.toml").read_text())
    patterns = [rule["regex"] for section in example["accounts"].values()
                for rule in section.get("rules", []) if "regex" in rule]
    readme = (ROOT / "README.md").read_text()
    patterns += re.findall(r"^regex = '([^']*)'", readme, re.MULTILINE)
    assert len(patterns) >= 2
    return patterns


TEXTS = ["track AB12", "TRACK  ab12", "Track AB12 please", "track", "track é12", "track Ab-12",
         "Info", "info: hours?", "order 1234", "hello\ntrack AB12", "trackAB12", "track AB12\n",
         "track \u0130stanbul", "track caf\u00e9", "track \u5305\u88f9",
         "track \u043f\u043e\u0441\u044b\u043b\u043a\u0430"]


@pytest.mark.parametrize("pattern", [*shipped_patterns(), r"^track (?P<code>\w+)$",
                                     r"^track (?P<code>.+)$", r"^info\b",
                                     r"^order\s+(?P<number>\d+)$", r"\bprice\b"])
def test_the_shipped_and_tested_patterns_match_as_re_matched_them(pattern: str) -> None:
    """Rules files were matched by re: the regex module (VERSION0) reads these alike."""
    old = re.compile(pattern, re.IGNORECASE)
    new = compile_rule_regex(pattern)
    for text in TEXTS:
        before, after = old.search(text), new.search(text)
        assert (before and (before.span(), before.groupdict())) == \
            (after and (after.span(), after.groupdict())), (pattern, text)


@pytest.mark.parametrize(("text", "re_code", "regex_code"), [
    ("track cafe\u0301", None, "cafe\u0301"),  # an accent written as a mark of its own
    ("track \u0915\u093f\u0924\u093e\u092c", None, "\u0915\u093f\u0924\u093e\u092c"),  # vowel signs
    ("track 12\u00bd", "12\u00bd", None),  # a vulgar fraction (superscripts alike)
])
def test_where_the_regex_module_reads_a_word_otherwise(
        text: str, re_code: str | None, regex_code: str | None) -> None:
    """\\w (and \\b) as Unicode defines word characters: with marks, without ½ or ²."""
    pattern = r"^track (?P<code>\w+)$"
    before, after = re.search(pattern, text), compile_rule_regex(pattern).search(text)
    assert (before and before["code"]) == re_code
    assert (after and after["code"]) == regex_code


@pytest.mark.parametrize("pattern", [r"\p{L}+", r"(?<=ab|c)x", r"(?|a)", r"(?V1)a", r"\X"])
def test_the_regex_modules_own_syntax_is_refused_as_before(pattern: str) -> None:
    """A rule is written in re's syntax, as it always was: what re refuses is still refused,
    not read by the regex module's extensions."""
    with pytest.raises(RulesError, match=r"rule 1: regex .* is invalid"):
        parse_rules({"accounts": {"acme": {"rules": [{"regex": pattern, "reply": "x"}]}}})


class Stalling:
    """A pattern that backtracks until its time limit on every text, on a clock of the test's:
    notes the limits it was given."""

    def __init__(self, clock: list[float]) -> None:
        self.clock = clock
        self.timeouts: list[float] = []
        self.groupindex: dict[str, int] = {}

    def search(self, text: str, *, timeout: float) -> Any:
        self.timeouts.append(timeout)
        self.clock[0] += timeout
        raise TimeoutError("regex timed out")


async def test_a_messages_regex_rules_share_one_time_limit(
        quick_limit: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each stopped at 0.1 s, twenty such rules held the bot's event loop, every account's
    STOPs with it, for seconds a message (5.9 s measured). Past the message's limit the rest
    are taken as no match unsearched, counted as stopped; the other rules still answer."""
    clock = [1000.0]
    monkeypatch.setattr(bot_decide, "time", ModuleWith(time, monotonic=lambda: clock[0]),
                        raising=False)
    monkeypatch.setattr(bot_decide, "REGEX_TIMEOUT_S", 0.1)
    monkeypatch.setattr(bot_decide, "REGEX_MESSAGE_S", 0.25, raising=False)
    account = parse_rules({"accounts": {"acme": {"rules": [
        *({"regex": f"(a|aa)+{n}$", "reply": "Many a's"} for n in range(20)),
        {"keyword": "aaaa", "reply": "Four a's"}]}}}).accounts["acme"]
    stalling = []
    for rule in account.rules[:20]:
        rule.pattern = stall = Stalling(clock)  # type: ignore[assignment]
        stalling.append(stall)
    before = sum(timeouts("acme", n) for n in range(1, 21))
    decision = keyword_reply(inbound("aaaa aaaa"), account)
    assert decision is not None and decision.reply == "Four a's"
    given = [t for stall in stalling for t in stall.timeouts]
    assert given == pytest.approx([0.1, 0.1, 0.05])
    assert sum(timeouts("acme", n) for n in range(1, 21)) - before == 20

    again = keyword_reply(inbound("aaaa"), account)  # each message has its own
    assert again is not None and len(given) + 3 == sum(len(s.timeouts) for s in stalling)


@pytest.mark.parametrize(("pattern", "reply", "text", "expected"), [
    (r"^track\s+(?P<orderNo>\w+)$", "Parcel {orderNo} is on its way.", "track AB12",
     "Parcel AB12 is on its way."),
    (r"^pedido\s+(?P<número>\d+)$", "Pedido {número} recibido.", "PEDIDO 42",
     "Pedido 42 recibido."),
])
def test_a_group_named_as_re_allows_is_a_template_field(pattern: str, reply: str, text: str,
                                                       expected: str) -> None:
    """README: named groups become template fields. One with a capital or a letter other than
    a-z was refused as "not a plain name" (the file did not load)."""
    account = parse_rules({"accounts": {"acme": {"rules": [
        {"regex": pattern, "reply": reply}]}}}).accounts["acme"]
    decision = keyword_reply(inbound(text), account)
    assert decision is not None and decision.reply == expected


@pytest.mark.parametrize("reply", ["{orderno}", "{OrderNo}", "{From}"])
def test_a_field_no_group_or_field_is_named_is_still_refused(reply: str) -> None:
    with pytest.raises(RulesError, match="unknown field"):
        parse_rules({"accounts": {"acme": {"rules": [
            {"regex": r"^track\s+(?P<orderNo>\w+)$", "reply": reply}]}}})
