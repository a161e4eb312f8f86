"""The bots' current rules: read at start, read again when the file changes or on SIGHUP (the
worker's runtime calls request_reload), and kept when the new file is invalid (logged and
counted, so an alert can say the next start fails). The rules file itself: rules.py.
"""

from __future__ import annotations

import asyncio
import difflib
import os
import time
from collections.abc import Callable, Collection
from pathlib import Path

from prometheus_client import Counter

from consumers.bots.compiled import CompiledAccount, RuleSet
from consumers.bots.rule_schema import AccountRules
from consumers.bots.rules import RulesError, load_rules
from switchboard.accounts import nfc_name
from switchboard.logs import get_logger

log = get_logger(__name__)
RELOAD_FAILURES = Counter("switchboard_bot_rules_reload_failures_total",
                          "Changed rules files refused (the previous rules stay)")


# A rules file changed this recently may be mid-save: it is read at a later check (a SIGHUP,
# which says the save is done, reads it at once).
SETTLED_NS = 1_000_000_000


class RulesSource:
    """The current rules; reloaded when the file changes or on SIGHUP, kept if the new is bad."""

    def __init__(self, path: Path | None, check_every_s: float = 2.0,
                 accounts: Collection[str] | None = None) -> None:
        """`accounts`: the accounts file's names, read at start, to warn at each load of a
        section for none of them (None: not known, nothing said)."""
        self.path = path
        self.check_every_s = check_every_s
        self.accounts = accounts
        # The state before the read: a save during it is a change, read at the first check.
        self._loaded = self._stat()
        self.current = load_rules(path) if path else RuleSet({}, "<none>")
        # Compliance is on without any rules. Each source its own: an account holds the
        # message being handled (decide.py).
        self.default = CompiledAccount("*", AccountRules())
        _warn_of_echoes(self.current)
        _warn_of_strangers(self.current, accounts)
        self._checked = time.monotonic()
        self._forced = False
        self.on_reload: list[Callable[[RuleSet], None]] = []  # called with the new rules

    async def watch(self) -> None:
        """Check for changes while no message comes either, so a reload (or a bad edit) is
        logged when it happens, not at the next message."""
        while True:
            await asyncio.sleep(self.check_every_s)
            self.maybe_reload()

    def request_reload(self) -> None:
        self._forced = True

    def _stat(self) -> tuple[int, int] | None:
        """The file's modification time and size: an editor's save can end in the same
        clock tick as a read of it half-written, and the time alone would not change again."""
        try:
            stat = os.stat(self.path) if self.path else None
        except OSError:
            return None
        return None if stat is None else (stat.st_mtime_ns, stat.st_size)

    def rules_for(self, account: str) -> CompiledAccount:
        self.maybe_reload()
        return self.current.for_account(account) or self.default

    def maybe_reload(self) -> None:
        if self.path is None:
            return
        now = time.monotonic()
        if not self._forced and now - self._checked < self.check_every_s:
            return
        self._checked = now
        seen = self._stat()
        if not self._forced:
            if seen == self._loaded:
                return
            age_ns = time.time_ns() - seen[0] if seen is not None else SETTLED_NS
            if 0 <= age_ns < SETTLED_NS:  # perhaps still being written: at the next check
                return
        try:
            rules: RuleSet | RulesError = load_rules(self.path)
        except RulesError as exc:
            rules = exc
        if self._stat() != seen:  # written to while read: what was read may be half of it
            return
        self._forced = False
        self._loaded = seen
        if isinstance(rules, RulesError):
            RELOAD_FAILURES.inc()
            log.error("new rules are invalid; keeping the previous ones", error=str(rules))
            return
        self.current = rules
        for reloaded in self.on_reload:
            reloaded(rules)
        log.info("rules reloaded", file=str(self.path), accounts=len(rules.accounts))
        _warn_of_echoes(rules)
        _warn_of_strangers(rules, self.accounts)


def _warn_of_echoes(rules: RuleSet) -> None:
    """A warning, not a refusal: such texts loaded before, and the loop needs a bot like
    ours at the other end. Blank ones too: a provider may confirm STOP itself. And a keyword
    of several words: it still answers a button whose payload it is."""
    for name, account in rules.accounts.items():
        for setting, word in account.keyword_first_texts():
            log.warning("a compliance text begins with a word bots answer: a bot like this one "
                        "at the other end answers it, and if its own text begins so too the two "
                        "answer each other until compliance_reply_limit holds them back, in "
                        "every reply_limit_window_s (opting each other out and back in by "
                        "turns too); begin it with another word",
                        account=name, setting=setting, word=word[:40])
        for setting in account.blank_compliance_texts():  # perhaps meant: the provider sends it
            log.warning("a compliance text is blank: its STOP, START or HELP is handled but not "
                        "answered, and carriers require each opt-out confirmed and HELP "
                        "answered; leave it blank only if your provider sends it",
                        account=name, setting=setting)
        for number, keyword in account.keywords_of_words():
            log.warning("a keyword rule's keyword is more than one word: a message's first "
                        "word is compared with it, so it answers no text, only a button whose "
                        "payload it is; for a text write prefix = the words, for a button "
                        "postback =", account=name, rule=number, keyword=keyword[:40])


def _warn_of_strangers(rules: RuleSet, accounts: Collection[str] | None) -> None:
    """A section for an account the accounts file does not have (`[accounts.acmee]` for acme)
    is never used: events name their account as the accounts file does, and acme's messages
    got no keyword answer or auto-reply, with no word of why. A warning, not a refusal: an
    account may leave the accounts file before its rules do."""
    if accounts is None:
        return
    # The likely meant: one without a section of its own, compared in any case and Unicode
    # form ("ACME", an "é" written as "e" and an accent), as such a typo may be written.
    unruled = {_compared(name): name for name in accounts if rules.section_of(name) is None}
    # A section of either Unicode form is the account's (RuleSet.section_of).
    ruled = {nfc_name(name) for name in accounts}
    for name in rules.accounts:
        if name == "*" or nfc_name(name) in ruled:  # "*": every account's defaults
            continue
        close = difflib.get_close_matches(_compared(name), sorted(unruled), n=1)
        log.warning("the rules file has a section for an account the accounts file does not "
                    "have: its rules answer no message (the account meant gets the \"*\" "
                    "section's, or only STOP/START/HELP); name it as the accounts file does",
                    account=name[:80], did_you_mean=unruled[close[0]] if close else None)


def _compared(name: str) -> str:
    return nfc_name(name).casefold()
