"""What to answer an inbound message: pure functions, no Kafka, no event loop, no clock.

Compliance comes first and cannot be overridden by a rule: STOP-family keywords opt the
contact out (and get one confirmation), START/UNSTOP opt back in, HELP gets the help text,
opted out or not (carriers require it); so does INFO, unless one of the account's rules
answers the message (rules files had "info" keyword rules before INFO was HELP). Then
keyword rules (first match wins), then the account's fallback.

The one clock: a regex rule's search stops after REGEX_TIMEOUT_S, and a message's after
REGEX_MESSAGE_S in all, counted and logged here (once a minute per rule, by that clock).
The one memory: the message's first answering rule (_first_rule), asked twice of INFO, kept
on its account until the handler is done with the message (forget_message).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

import regex
from prometheus_client import Counter

from consumers.bots.compiled import CompiledAccount, CompiledRule, FoundRule
from consumers.bots.templates import Template
from consumers.bots.words import WORD_CHARS, fold, split_head, word_forms
from normalizers.registry import opt_out_error_codes
from switchboard.commands import CommandKind
from switchboard.events import Direction, EventType, MessageEvent
from switchboard.logs import get_logger

log = get_logger(__name__)

# What a regex rule reads: the text's first REGEX_CHARS characters, a whole WhatsApp or
# Telegram message (their longest) and more than any provider sends as one SMS. Searching
# is often quadratic in the text's length (r"\w+$" tries each start): 4096 characters take
# milliseconds, a megabyte (the webhook's cap) would take hours.
REGEX_CHARS = 4096
# And for at most REGEX_TIMEOUT_S per rule and message: what no bound on the text prevents,
# a pattern that backtracks exponentially, (a|aa)+$, takes seconds over 40 characters. An
# ordinary pattern over 4096 characters needs well under a tenth of that.
REGEX_TIMEOUT_S = 0.1
# And all of a message's regex rules together for at most REGEX_MESSAGE_S, the rest then taken
# as no match unsearched: an account's many such patterns held the event loop for each (twenty
# copies of (a|aa)+$: 5.9 s a message, measured on a loaded machine).
REGEX_MESSAGE_S = 0.3
REGEX_TIMEOUTS = Counter("switchboard_bot_regex_timeouts_total",
                         "Regex rules' searches stopped at the time limit (taken as no match), "
                         "by account and rule number", ["account", "rule"])


class _OncePerWindow:
    """The regex timeout's warning at most once a window per rule (a contact can send the text
    that times out over and over), the next one saying how many were not logged since
    (`more`). A plain clock, not switchboard.throttle's timer: that needs a running event
    loop, and keyword_reply, called from a script or a test without one, raised RuntimeError
    at its first timeout. The counter counts every one."""

    def __init__(self, window_s: float = 60.0, max_kinds: int = 10_000) -> None:
        self.window_s = window_s
        self.max_kinds = max_kinds  # old rules' kinds after reloads go, oldest first
        self._kinds: OrderedDict[tuple[str, int, str], tuple[float, int]] = OrderedDict()

    def __call__(self, account: str, rule: int, section: str) -> None:
        kind, now = (account, rule, section), time.monotonic()
        told = self._kinds.get(kind)
        if told is not None and now - told[0] < self.window_s:
            self._kinds[kind] = told[0], told[1] + 1
            return
        self._kinds[kind] = now, 0
        self._kinds.move_to_end(kind)
        while len(self._kinds) > self.max_kinds:
            self._kinds.popitem(last=False)
        more = {"more": told[1]} if told is not None and told[1] else {}
        # Never the text: it is the contact's (and perhaps crafted to do this).
        log.warning("regex rule stopped at its time limit: taken as no match (a pattern that "
                    "backtracks? e.g. (a+)+ or (a|aa)+)", account=account, rule=rule,
                    section=section, timeout_s=REGEX_TIMEOUT_S, message_s=REGEX_MESSAGE_S,
                    **more)


_timeout_log = _OncePerWindow()


@dataclass(frozen=True)
class Decision:
    purpose: str  # stable name of why we answer: part of the reply's command id
    reply: str | None = None
    opt_out: bool | None = None  # True: opt out; False: opt back in; None: unchanged
    kind: CommandKind = CommandKind.MESSAGE
    values: dict[str, str | None] = field(default_factory=dict)
    source: str = "keyword"  # what said it, for an opt-out change: the text, or a "postback"


def template_values(event: MessageEvent, keyword: str | None = None,
                    rest: str | None = None) -> dict[str, str | None]:
    return {
        "from": event.from_, "to": event.to, "text": event.text, "keyword": keyword,
        "rest": rest, "account": event.account, "channel": event.channel,
        "provider": event.provider, "postback": event.postback,
    }


def split_first_word(text: str | None) -> tuple[str, str]:
    words = (text or "").strip().split(maxsplit=1)
    if not words:
        return "", ""
    return words[0], words[1] if len(words) > 1 else ""


def read_keyword(word: str, rest: str, words: Collection[str]) -> tuple[str, str]:
    """The keyword as written and the text after it, for a first word that is one of `words`:
    "price,shoes" (typed without a space) is "price" and "shoes", not "price,shoes" and ""."""
    if not word_forms(word, whole=True).isdisjoint(words):
        return word, rest
    cut = split_head(word, words)
    if cut is None:
        return word, rest
    keyword, after = cut
    return keyword, " ".join(part for part in (after, rest) if part)


def should_answer(event: MessageEvent, account: CompiledAccount) -> bool:
    """Only messages from end users; never our own numbers (no loops between two bots)."""
    if event.type is not EventType.INBOUND or event.direction is not Direction.INBOUND:
        return False
    sender = event.from_ or ""
    return bool(sender) and sender not in account.own_numbers and sender != event.to


def compliance(event: MessageEvent, account: CompiledAccount) -> Decision | None:
    word, rest = split_first_word(event.text)
    forms = word_forms(word)
    if rest and not forms & account.stop_words:  # "Opt out": a stop word of two words
        second, after = split_first_word(rest)
        pair = word_forms(f"{word} {second}")
        if pair & account.stop_words:
            word, rest, forms = f"{word} {second}", after, pair
    for words in (account.stop_words, account.start_words, account.help_words):
        if forms & words:
            word, rest = read_keyword(word, rest, words)
            break
    values = template_values(event, word, rest)
    if forms & account.stop_words:
        return Decision("opt-out", _render(account.stop_confirmation, values), opt_out=True,
                        kind=CommandKind.OPT_OUT_CONFIRMATION, values=values)
    if _stop_payload(event, account):
        values = template_values(event, event.postback, event.text)  # as a postback rule's
        return Decision("opt-out", _render(account.stop_confirmation, values), opt_out=True,
                        kind=CommandKind.OPT_OUT_CONFIRMATION, values=values, source="postback")
    if forms & account.start_words:
        return Decision("opt-in", _render(account.start_confirmation, values), opt_out=False,
                        values=values)
    if forms & account.help_words or (
            not word_forms(word, whole=True).isdisjoint(account.info_words)
            and _first_rule(event, account) is None):
        return Decision("help", _render(account.help, values), kind=CommandKind.HELP,
                        values=values)
    return None


def _stop_payload(event: MessageEvent, account: CompiledAccount) -> bool:
    """A button whose payload is, read whole, a stop word ("STOP", "opt_out"; not
    "STOP_REMINDERS" or "BUS-STOP"), unless a postback rule of the account answers it: the
    refusal of a keyword rule on a stop word advises one, for a payload that means another
    thing."""
    payload = event.postback
    if payload is None or len(payload) > WORD_CHARS:  # a stop word is one short word
        return False
    if word_forms(payload, whole=True).isdisjoint(account.payload_stop_words):
        return False
    folded = fold(payload)
    return not any(rule.postback == folded and rule.rule.channel in (None, event.channel)
                   for rule in account.rules)


def _first_rule(event: MessageEvent, account: CompiledAccount) -> FoundRule | None:
    """The first of the account's rules that answers `event`, looked for once per message:
    compliance asks it of an INFO, and keyword_reply then answers the same message with it.
    Each regex search before it ran twice otherwise, its time limit spent twice. Kept on the
    account for one message, by identity: a message read again is a new object."""
    memo = account.found_for
    if memo is not None and memo[0] is event:
        return memo[1]
    read = _Read(event, account)
    found: FoundRule | None = None
    # A message with nothing in it is answered by no rule, as by no fallback: a catch-all
    # regex (".*") answered a contact card or a sign-in response. One with media or a
    # button is read as an empty text: '^$' answers a photo sent without words.
    rules = account.rules if has_content(event) else []
    for number, rule in enumerate(rules, start=1):
        values = _match(rule, number, event, read)
        if values is not None:
            found = number, rule, values
            break
    account.found_for = event, found
    return found


def forget_message(account: CompiledAccount) -> None:
    """The message is handled: its first rule is not asked again."""
    account.found_for = None


def keyword_reply(event: MessageEvent, account: CompiledAccount) -> Decision | None:
    found = _first_rule(event, account)
    if found is not None:
        number, rule, values = found
        return Decision(f"rule-{number}", _render(rule.template, values), values=values)
    if account.fallback is not None and has_content(event):
        values = template_values(event, *split_first_word(event.text))
        return Decision("fallback", _render(account.fallback, values), values=values)
    return None


def has_content(event: MessageEvent) -> bool:
    """Words, media or a button: what an answer can be to (a rule's, the fallback's, the
    auto-reply's). An empty SMS, a blank text, a contact card or sign-in response the
    normalizer gave nothing of: answered, each is a paid message answering nothing."""
    return bool((event.text or "").strip() or event.postback or event.media)


class _Read:
    """A message as rules read it, read once for all of an account's rules, and folded only
    as far as the longest prefix (or postback, keyword) needs: a megabyte folded whole held the
    event loop for each prefix rule. WORD_CHARS more characters than the prefix's, for
    characters that fold to nothing (accents written as marks), as a keyword's word is read
    up to WORD_CHARS: a prefix with more marks inside than that in the message does not match."""

    def __init__(self, event: MessageEvent, account: CompiledAccount) -> None:
        self.text = (event.text or "").strip()
        self.searched = self.text[:REGEX_CHARS]  # what regex rules read
        self.regex_s = 0.0  # the time its regex searches took
        self.section = account.name  # whose rules: the account's, or "*"'s
        self.word, self.rest = split_first_word(self.text)
        self.head = self.text[:account.prefix_chars + WORD_CHARS] if account.prefix_chars \
            else ""
        self.folded = fold(self.head)
        postback = event.postback
        self.postback = fold(postback) if postback is not None and \
            len(postback) <= account.postback_chars + WORD_CHARS else None
        self._keyword_forms: set[str] | None = None

    def keyword_forms(self) -> set[str]:
        """What a keyword rule compares its keyword with: the first word's forms, as compliance
        reads them ("Price?" and "PRICE!" are the keyword), and the button's payload. Read once
        for all of the rules: an account of a thousand keyword rules (product codes) read a
        first word of 300 characters a thousand times, 0.5 s of the event loop a message."""
        if self._keyword_forms is None:
            self._keyword_forms = word_forms(self.word) | (
                {self.postback} if self.postback else set())
        return self._keyword_forms


def _match(rule: CompiledRule, number: int, event: MessageEvent,
           read: _Read) -> dict[str, str | None] | None:
    if rule.rule.channel and rule.rule.channel != event.channel:
        return None
    word, rest = read.word, read.rest
    if rule.keyword is not None:
        if rule.keyword not in read.keyword_forms():
            return None
        return template_values(event, *read_keyword(word, rest, (rule.keyword,)))
    if rule.postback is not None:
        if read.postback is not None and read.postback == rule.postback:
            return template_values(event, event.postback, event.text)
        return None
    text = read.text
    if rule.prefix is not None:
        if read.folded.startswith(rule.prefix):  # fold() reads character by character
            matched, _ = _split_folded(read.head, len(rule.prefix))
            return template_values(event, matched, text[len(matched):].strip())
        return None
    assert rule.pattern is not None
    found = _search(rule.pattern, read, event.account, number)
    if found is None:
        return None
    values = template_values(event, found.group(0), text[found.end():].strip())
    values.update(found.groupdict())
    return values


def _search(pattern: regex.Pattern[str], read: _Read, account: str,
            number: int) -> regex.Match[str] | None:
    """A regex rule's search, stopped at the time limit (its own, or what is left of the
    message's): then no match, and the next rule."""
    left = REGEX_MESSAGE_S - read.regex_s
    started = time.monotonic()
    try:
        if left <= 0:
            raise TimeoutError("the message's regex time is spent")  # not searched
        return pattern.search(read.searched, timeout=min(REGEX_TIMEOUT_S, left))
    except TimeoutError:
        REGEX_TIMEOUTS.labels(account, str(number)).inc()
        _timeout_log(account, number, read.section)
        return None
    finally:
        read.regex_s += time.monotonic() - started


def _split_folded(text: str, length: int) -> tuple[str, str]:
    """`text` cut where its folded form reaches `length` characters. Folding changes lengths
    ("O" + a combining diaeresis folds to "o", "ß" to "ss"), so the folded match's length is
    no position in the original; fold() works character by character, so the original's
    characters are counted by what each folds to. A mark folded away goes with its letter."""
    end = folded = 0
    while end < len(text) and folded < length:
        folded += len(fold(text[end]))
        end += 1
    while end < len(text) and not fold(text[end]):
        end += 1
    return text[:end], text[end:]


def change_time(event: MessageEvent) -> datetime:
    """When the contact (their STOP, START) or provider (its opt-out report) made the change an
    event brings: the provider's time, which a retry of its webhook keeps, where the time
    ingest received it is that of the retry (a START retried after the contact's STOP undid
    it). No later than that receipt: a provider's clock ahead, or its local time written
    without an offset (read as UTC), would stamp it hours ahead, and until then the contact's
    next change would be taken as older, and not applied."""
    return min(event.occurred_at or event.received_at, event.received_at)


def provider_opt_out(event: MessageEvent) -> bool:
    """A status report saying the contact opted out at the provider (e.g. MessageBird 103,
    Infobip 603 on SMS): each provider's normalizer module names its codes."""
    code = event.error.code if event.error else None
    return (event.type is EventType.STATUS and code is not None
            and code in opt_out_error_codes(event.provider, event.channel))


def _render(template: Template, values: dict[str, str | None]) -> str:
    return template.render(values).strip()
