"""The bots' rules file: keyword rules, fallback, auto-reply and compliance texts per account.

Validated completely at load: a mistake fails with the file, the account, the rule number and
what is wrong, instead of surfacing as a silent non-reply in production.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

import regex
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from consumers.bots.templates import FIELDS, Template, TemplateError
from switchboard.addresses import address
from switchboard.events import CHANNEL_PATTERN
from switchboard.settings import unreadable

# REVOKE and OPT OUT too: since April 2025 the FCC counts a reply of stop, quit, end, revoke,
# opt out, cancel or unsubscribe as revoking consent (47 CFR 64.1200(a)(12)), as CTIA does.
DEFAULT_STOP = ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT",
                "OPT-OUT", "OPT OUT")
# A button's payload (postback) that is wholly one of these, or of the account's own stop
# words, opts out whatever the button's title (the title is the text, read as texts are): the
# business that made STOP a button's payload meant it so. Not CANCEL, END or QUIT, often a
# flow's own ids ("cancel the booking", "end the chat"), nor START or HELP ("Get started").
PAYLOAD_STOP = ("STOP", "STOPALL", "UNSUBSCRIBE", "REVOKE", "OPTOUT", "OPT-OUT", "OPT OUT")
DEFAULT_START = ("START", "UNSTOP")
DEFAULT_HELP = ("HELP",)
# Also HELP to US carriers (CTIA; Twilio's defaults), but a word rules files may already answer
# ("info" keyword rules loaded before it was one): HELP unless one of the account's rules
# answers the message, and read whole only, so "info@example.com" is an address, not INFO.
DEFAULT_INFO = ("INFO",)
DEFAULT_REPLY_LIMIT = 10  # automated replies per contact per window
DEFAULT_REPLY_LIMIT_WINDOW_S = 600.0


class RulesError(ValueError):
    """The rules file is invalid; the message says where and why."""


def fold(text: str) -> str:
    """Case- and accent-insensitive form: 'Stöp' and 'STOP' compare equal."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _decoration(char: str) -> bool:
    category = unicodedata.category(char)
    return category[0] in "PSZ" or category in ("Cf", "Cc")  # Cc: a NUL padding an SMS


def _mark(char: str) -> bool:
    return unicodedata.category(char)[0] == "M"


def _bare(folded: str) -> str:
    """A folded word without the punctuation, symbols and invisible characters around it:
    "Stop." and "STOP!" are STOP, as "Stop please" is. A mark (category M) goes only with the
    character it follows: an emoji's variation selector goes with the emoji, but a vowel sign
    (Devanagari's ा, ी: fold() keeps them) is part of its word ("बंदा" is not "बंद")."""
    start, end = 0, len(folded)
    while start < end and (_decoration(folded[start]) or _mark(folded[start])):
        start += 1  # a mark at the start has no character of the word before it
    while end > start:
        base = end
        while base > start and _mark(folded[base - 1]):
            base -= 1
        if base == start or not _decoration(folded[base - 1]):
            break
        end = base - 1
    return folded[start:end]


def _cuts(char: str) -> bool:
    """A comma, full stop or the like, an emoji or other symbol, or a zero-width space (a
    space in scripts written without them): each ends a word typed without a space after it.
    Not a dash, an apostrophe or a joiner, which join words ("stop-motion", a Devanagari
    conjunct)."""
    category = unicodedata.category(char)
    return (category == "Po" and char not in "'\u2019") or category == "So" or char == "\u200b"


# Invisible characters that are no format character (Cf): a combining grapheme joiner,
# Hangul fillers, variation selectors (Unicode's default-ignorable code points).
_IGNORABLE = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u3164\uffa0"
                       + "".join(map(chr, [*range(0x180B, 0x1810), *range(0xFE00, 0xFE10),
                                           *range(0xE0100, 0xE01F0)])))


def _joined(folded: str) -> str:
    """A folded word without the invisible characters inside it, and with any dash or
    underscore written as a hyphen: a contact who sees "STOP" or "opt-out" wrote it, whatever
    a keyboard or a copied text put between the letters (a zero-width space, a non-breaking
    hyphen)."""
    def dash(char: str) -> bool:
        return unicodedata.category(char) in ("Pd", "Pc") or char == "\u2212"  # minus sign

    return "".join("-" if dash(c) else c for c in folded
                   if c not in _IGNORABLE and unicodedata.category(c) != "Cf")


def _head(bare: str) -> str:
    """A bare word up to a comma, full stop or the like inside it: "Stop,please" and
    "STOP.Thanks" (typed without a space) start with STOP."""
    for index, char in enumerate(bare):
        if _cuts(char):
            return bare[:index]
    return bare


# Letters that read as Latin ones, folded (lower case), beyond what NFKD maps already
# (full-width, mathematical, circled and squared letters): Cyrillic and Greek letters that
# look like Latin ones in upper or lower case (typed on another keyboard layout, or pasted to
# dodge a filter), small capitals and the letter emoji ("fancy text" generators).
_LOOKALIKES = str.maketrans(
    "\u0430\u0432\u0435\u04bb\u0456\u0458\u043a\u043c\u043d\u043e\u0440\u0441\u0455"
    "\u0442\u0443\u0445\u0501\u051b\u051d\u04cf"  # Cyrillic
    "\u03b1\u03b2\u03b5\u03b7\u03b9\u03ba\u03bc\u03bd\u03bf\u03c1\u03c4\u03c5\u03c7"
    "\u03b6"  # Greek
    "\u1d00\u0299\u1d04\u1d05\u1d07\ua730\u0262\u029c\u026a\u1d0a\u1d0b\u029f\u1d0d"
    "\u0274\u1d0f\u1d18\u0280\ua731\u1d1b\u1d1c\u1d20\u1d21\u028f\u1d22",  # small caps
    "abehijkmhopcstyxdqwl" "abehikmnoptyxz" "abcdefghijklmnoprstuvwyz",
) | {first + n: chr(ord("a") + n) for n in range(26)
     for first in (0x1F1E6, 0x1F150, 0x1F170)}  # regional indicators, negative circled/squared


def lookalike(folded: str) -> str:
    """A folded word with the letters that look like Latin ones read as those: STOP in
    Cyrillic letters (DZE, TE, O, ER) is STOP."""
    return folded.translate(_LOOKALIKES)


def whole_forms(folded: str) -> set[str]:
    """The forms of a folded word read whole: as written (a keyword may hold punctuation),
    bare, and bare without what is invisible inside it, in Latin letters or lookalikes."""
    joined = _joined(folded)
    return {folded, _bare(folded), _bare(joined), _bare(lookalike(joined))}


def compliance_forms(folded: str) -> set[str]:
    """The forms of a folded first word compliance looks up in its words: read whole, or up
    to punctuation inside it. More forms only ever add matches: a missed opt-out is a
    compliance failure, an extra one is cheap."""
    joined = _joined(folded)
    heads = {_head(_bare(form)) for form in (folded, joined, lookalike(joined))}
    return whole_forms(folded) | heads


# How much of a first word is compared with keywords, on either side of where its letters
# start (after quotes, emoji; looked for in the first LEAD_CHARS, a whole WhatsApp or Telegram
# message): a keyword is one word, and a megabyte sent without a space must not hold the event
# loop for seconds, each form a pass over all of it.
WORD_CHARS = 256
LEAD_CHARS = 4096


def _compared(word: str) -> str:
    start, end = 0, min(len(word), LEAD_CHARS)
    while start < end and (_decoration(word[start]) or _mark(word[start])):
        start += 1
    return word[max(0, start - WORD_CHARS):start + WORD_CHARS]


def word_forms(word: str, *, whole: bool = False) -> set[str]:
    """The forms of a first word as written (compliance_forms; whole: only whole_forms)."""
    folded = fold(_compared(word))
    return whole_forms(folded) if whole else compliance_forms(folded)


def split_head(word: str, words: Collection[str]) -> tuple[str, str] | None:
    """`word` (as written) cut where punctuation inside it ends one of `words` (folded), and
    what follows the punctuation: "price,shoes" is ("price", "shoes"), so a rule's {rest}
    is "shoes". None if no such cut makes one of them (then the word is read whole)."""
    started, tries = False, 0
    for index, char in enumerate(_compared(word)):
        folded = fold(char)
        if started and any(_cuts(c) for c in folded):
            if not word_forms(word[:index], whole=True).isdisjoint(words):
                after = word[index:]
                start = 0
                while start < len(after) and all(_decoration(c) or _mark(c)
                                                 for c in fold(after[start])):
                    start += 1
                return word[:index], after[start:]
            tries += 1
            if tries == 3:  # bounded: each try folds the word so far
                return None
        started = started or any(not (_decoration(c) or _mark(c)) for c in folded)
    return None


def compile_rule_regex(pattern: str) -> regex.Pattern[str]:
    """A rule's regex as the bots match it: in any case, and by the regex module (in its
    re-compatible VERSION0), not re: a search of re cannot be stopped, and one account's
    pattern that backtracks without end ((a|aa)+$) on a contact's text would hold the bot's
    event loop, every account's STOPs and replies, for minutes (decide.py sets the limit)."""
    return regex.compile(pattern, regex.IGNORECASE | regex.VERSION0)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rule(_Strict):
    """One rule: exactly one of keyword, prefix, regex or postback; first match wins."""

    keyword: str | None = None
    prefix: str | None = None
    regex: str | None = None
    postback: str | None = None
    channel: str | None = None
    reply: str

    @model_validator(mode="after")
    def _one_matcher(self) -> Rule:
        given = [m for m in ("keyword", "prefix", "regex", "postback") if getattr(self, m)]
        if len(given) != 1:
            raise ValueError("give exactly one of keyword, prefix, regex, postback "
                             f"(got {', '.join(given) or 'none'})")
        for matcher in ("keyword", "prefix"):
            written = getattr(self, matcher)
            if written and not fold(written):
                raise ValueError(f"{matcher} {written!r} is only accents or marks: it would "
                                 "match every message")
        if self.regex is not None:
            # Written in re's syntax, as rules always were (regex's own extensions are
            # refused as before); matched by the regex module, whose search can be stopped.
            try:
                re.compile(self.regex)
                compile_rule_regex(self.regex)
            except (re.error, regex.error, OverflowError) as exc:  # Overflow: a{99999999999}
                raise ValueError(f"regex {self.regex!r} is invalid: {exc}") from None
            except RecursionError:  # re's parser recurses into each group
                raise ValueError(f"regex {self.regex!r} is invalid: groups nested too "
                                 "deeply") from None
        return self

    @field_validator("channel")
    @classmethod
    def _a_channel_events_have(cls, channel: str | None) -> str | None:
        """Events name channels in lower case ("whatsapp"): "WhatsApp" would never match."""
        if channel is not None and re.fullmatch(CHANNEL_PATTERN, channel) is None:
            raise ValueError(f"channel {channel!r} matches no event: channels are written "
                             f"as events write them, in lower case ({channel.lower()!r})")
        return channel


class AutoReply(_Strict):
    text: str
    cooldown_s: float = Field(default=3600, gt=0)


class AccountRules(_Strict):
    help_text: str = "Reply STOP to opt out, START to opt back in."
    stop_confirmation: str = "You have been unsubscribed and will receive no more messages. " \
                             "Reply START to subscribe again."
    start_confirmation: str = "You are subscribed again. Reply STOP to opt out."
    fallback: str | None = None
    extra_stop_keywords: list[str] = Field(default_factory=list)
    own_numbers: list[str] = Field(default_factory=list, description="never reply to these")
    auto_reply: AutoReply | None = None
    # Automated replies (all but compliance's) per contact per sliding window: a sender not in
    # own_numbers (an "I'm driving" responder, another bot) and ours would otherwise answer
    # each other without end, each SMS paid for. 0: the default.
    reply_limit: int = Field(default=0, ge=0)
    reply_limit_window_s: float = Field(default=0, ge=0)
    rules: list[Rule] = Field(default_factory=list)

    @field_validator("extra_stop_keywords")
    @classmethod
    def _single_words(cls, words: list[str]) -> list[str]:
        for word in words:
            if not word.strip() or len(word.split()) != 1:
                raise ValueError(f"stop keyword {word!r} must be one word")
            if not fold(word):  # "\u0301" would opt out everyone who sends only an emoji
                raise ValueError(f"stop keyword {word!r} is only accents or marks")
        return words


class _RuleTemplateError(Exception):
    def __init__(self, message: str, number: int) -> None:
        super().__init__(message)
        self.number = number


class CompiledRule:
    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.keyword = fold(rule.keyword) if rule.keyword else None
        self.prefix = fold(rule.prefix) if rule.prefix else None
        self.postback = fold(rule.postback) if rule.postback else None
        self.pattern = compile_rule_regex(rule.regex) if rule.regex else None
        groups = frozenset(self.pattern.groupindex) if self.pattern else frozenset()
        # Regex groups are fields too, of what the contact wrote.
        self.template = Template(rule.reply, FIELDS | groups, written=groups)


def _with_lookalikes(words: Iterable[str]) -> set[str]:
    return {form for word in words for form in (fold(word), lookalike(fold(word)))}


class CompiledAccount:
    """An account's rules, ready to match: keywords folded, regexes and templates compiled."""

    def __init__(self, name: str, rules: AccountRules) -> None:
        self.name = name
        self.config = rules
        # Each also in lookalike letters: an own keyword in Cyrillic, written with some
        # Latin letters ("CTOП"), matches too.
        self.stop_words = _with_lookalikes((*DEFAULT_STOP, *rules.extra_stop_keywords))
        self.payload_stop_words = _with_lookalikes((*PAYLOAD_STOP, *rules.extra_stop_keywords))
        self.start_words = _with_lookalikes(DEFAULT_START)
        self.help_words = _with_lookalikes(DEFAULT_HELP)
        self.info_words = _with_lookalikes(DEFAULT_INFO)
        self.rules = []
        for number, rule in enumerate(rules.rules, start=1):
            try:
                self.rules.append(CompiledRule(rule))
            except TemplateError as exc:
                raise _RuleTemplateError(str(exc), number) from None
        # The longest prefix, folded: how much of a message prefix rules need (decide.py).
        self.prefix_chars = max((len(rule.prefix) for rule in self.rules if rule.prefix),
                                default=0)
        # The longest postback a rule compares a button's with (keyword rules do too).
        self.postback_chars = max((len(rule.postback or rule.keyword or "")
                                   for rule in self.rules), default=0)
        self.help = Template(rules.help_text)
        self.stop_confirmation = Template(rules.stop_confirmation)
        self.start_confirmation = Template(rules.start_confirmation)
        self.fallback = Template(rules.fallback) if rules.fallback else None
        self.auto_reply = Template(rules.auto_reply.text) if rules.auto_reply else None
        # Spelled as events spell senders: E.164 on a phone channel ("31970102030", as a
        # provider writes it, would otherwise never match, and the bot would answer its own
        # number), as given on others (a Telegram bot's numeric id gets no "+").
        self.own_numbers = {spelling for number in rules.own_numbers
                            for spelling in (address(number, "sms") or number, number.strip())}
        self.reply_limit = rules.reply_limit or DEFAULT_REPLY_LIMIT
        self.reply_limit_window_s = rules.reply_limit_window_s or DEFAULT_REPLY_LIMIT_WINDOW_S

    def keyword_first_texts(self) -> list[tuple[str, str]]:
        """The compliance texts (setting name, first word) that begin with a word compliance
        answers. Compliance replies are never limited, so a bot like this one at the other
        end answers "HELP: Acme alerts..." with its help text; if that begins so too, the two
        answer each other without end, each SMS paid for."""
        words = self.stop_words | self.start_words | self.help_words | self.info_words
        found = []
        for setting in ("help_text", "stop_confirmation", "start_confirmation"):
            first = (getattr(self.config, setting).split(maxsplit=1) or [""])[0]
            if word_forms(first) & words:
                found.append((setting, first))
        return found


class RuleSet:
    def __init__(self, accounts: dict[str, CompiledAccount], source: str) -> None:
        self.accounts = accounts
        self.source = source

    def for_account(self, account: str) -> CompiledAccount | None:
        return self.accounts.get(account) or self.accounts.get("*")


def parse_rules(data: dict[str, Any], source: str = "<rules>") -> RuleSet:
    unknown = sorted(set(data) - {"accounts"})
    if unknown:  # "[account.shop]": otherwise no rules at all, and no word of why
        raise RulesError(f"{source}: unknown top-level key(s) {', '.join(map(repr, unknown))}; "
                         "rules go under [accounts.<name>]")
    table = data.get("accounts", {})
    if not isinstance(table, dict):
        raise RulesError(f"{source}: [accounts] must be a table")
    compiled: dict[str, CompiledAccount] = {}
    for name, fields in table.items():
        try:
            rules = AccountRules.model_validate(fields)
        except ValidationError as exc:
            raise RulesError(f"{source}: account {name!r}: {_describe(exc)}") from None
        try:
            compiled[name] = CompiledAccount(name, rules)
        except TemplateError as exc:
            raise RulesError(f"{source}: account {name!r}: {exc}") from None
        except _RuleTemplateError as exc:
            raise RulesError(f"{source}: account {name!r}: rule {exc.number}: {exc}") from None
        shadowed = _shadowed_keyword(compiled[name])
        if shadowed:
            raise RulesError(f"{source}: account {name!r}: {shadowed}")
    return RuleSet(compiled, source)


def _shadowed_keyword(account: CompiledAccount) -> str | None:
    """A keyword rule on a compliance word could never answer a message: compliance comes
    first ("cancel 12" opts the contact out, it does not cancel order 12)."""
    lists = (("stop", account.stop_words), ("start", account.start_words),
             ("help", account.help_words))
    for number, rule in enumerate(account.rules, start=1):
        if rule.keyword is None:
            continue
        for kind, words in lists:
            for word in sorted(compliance_forms(rule.keyword) & words):
                own = kind == "stop" and word not in {fold(w) for w in DEFAULT_STOP}
                fix = ("pick another keyword or take it out of extra_stop_keywords" if own
                       else "pick another keyword (the built-in STOP/START/HELP words stay)")
                return (f"rule {number}: keyword {rule.rule.keyword!r} is the {kind} word "
                        f"{word!r}, which compliance answers before any rule: the rule would "
                        f"never answer a message that says it; {fix} (or, for a button's "
                        f"payload, write postback = {rule.rule.keyword!r})")
    return None


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        location = list(error["loc"])
        if len(location) >= 2 and location[0] == "rules" and isinstance(location[1], int):
            location[:2] = [f"rule {location[1] + 1}"]  # people count rules from 1
        where = ".".join(str(p) for p in location)
        parts.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def load_rules(path: Path) -> RuleSet:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RulesError(f"rules file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        # A reload must not die of these either (an edit saved as Latin-1): the previous
        # rules stay, as for a file that is not TOML.
        raise RulesError(f"rules file {path}: cannot read it: {unreadable(exc)}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses into each nested array or inline table
        raise RulesError(f"rules file {path}: cannot read it: arrays or tables nested too "
                         "deeply") from None
    except ValueError as exc:  # tomllib lets int()'s out: an integer of over 4,300 digits
        raise RulesError(f"{path}: not valid TOML: {exc}") from None
    return parse_rules(data, str(path))
