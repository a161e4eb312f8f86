"""An account's rules as the bots match them: the words compliance answers, keywords folded,
regexes and templates compiled; and the rule set of all accounts, with the "*" defaults.
"""

from __future__ import annotations

from collections.abc import Iterable

from consumers.bots.rule_schema import AccountRules, Rule, compile_rule_regex
from consumers.bots.templates import FIELDS, Template, TemplateError
from consumers.bots.words import fold, lookalike, whole_forms, word_forms
from switchboard.accounts import nfc_name
from switchboard.addresses import address
from switchboard.events import MessageEvent

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
DEFAULT_COMPLIANCE_REPLY_LIMIT = 5  # compliance replies that change no state, in that window


class RuleTemplateError(Exception):
    """A rule's template is invalid: its number, for the error parse_rules raises."""

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


# The first rule answering a message: its number, the rule and the values it fills in.
FoundRule = tuple[int, CompiledRule, dict[str, str | None]]


def _with_lookalikes(words: Iterable[str]) -> set[str]:
    return {form for word in words for form in (fold(word), lookalike(fold(word)))}


def _stop_forms(words: Iterable[str]) -> set[str]:
    """Stop words in lookalike letters too, and each also read whole as a contact's word is:
    without the punctuation, symbols and invisible characters around or in it ("ARRET!"
    opted out only "ARRET!" to the letter, not ARRET). Not a form with nothing left: "🛑"
    alone stays itself, or every message without words (a photo) would opt out."""
    words = list(words)
    return _with_lookalikes(words) | {form for word in words
                                      for form in whole_forms(fold(word)) if form}


class CompiledAccount:
    """An account's rules, ready to match: keywords folded, regexes and templates compiled."""

    def __init__(self, name: str, rules: AccountRules) -> None:
        self.name = name
        self.config = rules
        # Each also in lookalike letters: an own keyword in Cyrillic, written with some
        # Latin letters ("CTOП"), matches too.
        self.stop_words = _stop_forms((*DEFAULT_STOP, *rules.extra_stop_keywords))
        self.payload_stop_words = _stop_forms((*PAYLOAD_STOP, *rules.extra_stop_keywords))
        self.start_words = _with_lookalikes(DEFAULT_START)
        self.help_words = _with_lookalikes(DEFAULT_HELP)
        self.info_words = _with_lookalikes(DEFAULT_INFO)
        self.rules = []
        for number, rule in enumerate(rules.rules, start=1):
            try:
                self.rules.append(CompiledRule(rule))
            except TemplateError as exc:
                raise RuleTemplateError(str(exc), number) from None
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
        self.compliance_reply_limit = rules.compliance_reply_limit or \
            DEFAULT_COMPLIANCE_REPLY_LIMIT
        # The message being handled and the first of these rules answering it (decide.py):
        # compliance asks it of an INFO, and keyword_reply then answers with it. Here, not in
        # a module: each account (a reload's new ones) has its own, and the handler clears it
        # once the message is handled, not keeping it (a megabyte, perhaps) or old rules.
        self.found_for: tuple[MessageEvent, FoundRule | None] | None = None

    def keyword_first_texts(self) -> list[tuple[str, str]]:
        """The compliance texts (setting name, first word) that begin with a word compliance
        answers. A bot like this one at the other end answers "HELP: Acme alerts..." with its
        help text; if that begins so too, the two answer each other until the compliance reply
        limit holds them back, in every window, each SMS paid for (if their confirmations opt
        each other out and back in by turns, the limit of opt-ins' confirmations: limits.py)."""
        words = self.stop_words | self.start_words | self.help_words | self.info_words
        found = []
        for setting in ("help_text", "stop_confirmation", "start_confirmation"):
            first = (getattr(self.config, setting).split(maxsplit=1) or [""])[0]
            if word_forms(first) & words:
                found.append((setting, first))
        return found

    def keywords_of_words(self) -> list[tuple[int, str]]:
        """The keyword rules (number, keyword) whose keyword is more than one word: a
        message's first word is compared with it, so it answers no text, only a button whose
        payload it is (a use such rules may have: not refused)."""
        return [(number, rule.rule.keyword) for number, rule in enumerate(self.rules, start=1)
                if rule.rule.keyword is not None and len(rule.rule.keyword.split()) > 1]

    def blank_compliance_texts(self) -> list[str]:
        """The compliance texts (setting names) that are blank: no reply is made of them."""
        return [setting for setting in ("help_text", "stop_confirmation", "start_confirmation")
                if not getattr(self.config, setting).strip()]


class RuleSet:
    def __init__(self, accounts: dict[str, CompiledAccount], source: str) -> None:
        """`accounts`: by section name, no two of one name once Unicode-normalized (parse_rules
        refuses such a file: one of them could never be looked up)."""
        self.accounts = accounts
        self.source = source
        self._by_nfc = {nfc_name(name): account for name, account in accounts.items()}

    def for_account(self, account: str) -> CompiledAccount | None:
        return self.section_of(account) or self.accounts.get("*")

    def section_of(self, account: str) -> CompiledAccount | None:
        """The account's own section, not "*"'s. Named as the accounts file names the account,
        in either Unicode form, as the accounts file looks names up: events spell it as that
        file does, and a section of "café" written the other way (e and a combining accent,
        as macOS or an editor may) was never used."""
        section = self.accounts.get(account)
        if section is None and not account.isascii():  # only on a miss, as Accounts does
            section = self._by_nfc.get(nfc_name(account))
        return section
