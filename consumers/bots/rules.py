"""The bots' rules file: keyword rules, fallback, auto-reply and compliance texts per account.

Validated completely at load: a mistake fails with the file, the account, the rule number (and
its line: rule_lines.py) and what is wrong, instead of surfacing as a silent non-reply in
production. The schema is in rule_schema.py, the rules as matched in compiled.py, how a keyword
is read in words.py.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from consumers.bots.compiled import (
    DEFAULT_STOP,
    CompiledAccount,
    CompiledRule,
    RuleSet,
    RuleTemplateError,
)
from consumers.bots.rule_lines import RuleLines
from consumers.bots.rule_schema import AccountRules
from consumers.bots.templates import TemplateError
from consumers.bots.words import compliance_forms, fold, whole_forms
from switchboard.accounts import nfc_name
from switchboard.validation import unreadable


class RulesError(ValueError):
    """The rules file is invalid; the message says where and why."""


def parse_rules(data: dict[str, Any], source: str = "<rules>", text: str | None = None
                ) -> RuleSet:
    """`text`, the file's, if there is one: errors then say the line of the rule they name
    (or of the account's table, for its own settings)."""
    lines = RuleLines(text, data) if text is not None else None
    unknown = sorted(set(data) - {"accounts"})
    if unknown:  # "[account.shop]": otherwise no rules at all, and no word of why
        raise RulesError(f"{source}: unknown top-level key(s) {', '.join(map(repr, unknown))}; "
                         "rules go under [accounts.<name>]")
    table = data.get("accounts", {})
    if not isinstance(table, dict):
        raise RulesError(f"{source}: [accounts] must be a table")
    compiled: dict[str, CompiledAccount] = {}
    by_nfc: dict[str, str] = {}  # section names once Unicode-normalized, as accounts' are
    for name, fields in table.items():
        def rule(number: int, name: str = name) -> str:
            line = lines.line_of(name, number) if lines is not None else None
            return f"rule {number}" if line is None else f"rule {number} (line {line})"

        def account(name: str = name) -> str:  # for its own settings: no rule's line to say
            line = lines.account_line(name) if lines is not None else None
            return f"account {name!r}" if line is None else f"account {name!r} (line {line})"

        if (same := by_nfc.setdefault(nfc_name(name), name)) != name:
            # Looked up in either form (RuleSet.section_of): one of the two would never be.
            # Escaped (!a), as the accounts file says it: on screen the two look the same.
            both = [lines.account_line(n) for n in (same, name)] if lines is not None else []
            where = f" (lines {both[0]} and {both[1]})" if both and None not in both else ""
            raise RulesError(f"{source}: accounts {same!a} and {name!a}{where} are the same "
                             "name once Unicode-normalized (NFC): an account is looked up in "
                             "either form, so one of them would never be used; merge them")
        try:
            rules = AccountRules.model_validate(fields)
        except ValidationError as exc:
            about_rules = any(error["loc"][:1] == ("rules",) for error in exc.errors())
            where = f"account {name!r}" if about_rules else account()
            raise RulesError(f"{source}: {where}: {_describe(exc, rule)}") from None
        try:
            compiled[name] = CompiledAccount(name, rules)
        except TemplateError as exc:
            raise RulesError(f"{source}: {account()}: {exc}") from None
        except RuleTemplateError as exc:
            raise RulesError(f"{source}: account {name!r}: {rule(exc.number)}: {exc}") from None
        taken = _stop_keyword_taking_a_word(compiled[name])
        if taken:
            raise RulesError(f"{source}: {account()}: {taken}")
        shadowed = _shadowed_keyword(compiled[name])
        if shadowed:
            number, problem = shadowed
            raise RulesError(f"{source}: account {name!r}: {rule(number)}: {problem}")
        answered = _answered_first(compiled[name], rule)
        if answered:
            number, problem = answered
            raise RulesError(f"{source}: account {name!r}: {rule(number)}: {problem}")
    return RuleSet(compiled, source)


def _stop_keyword_taking_a_word(account: CompiledAccount) -> str | None:
    """A stop keyword of the account's own that is, read as a message's word is, a START or
    HELP word: compliance reads stop words first, so that word would opt the contact out. A
    contact could no longer opt back in by START (told to by the stop confirmation), and HELP,
    which carriers require answered, would go unanswered. Not INFO: it is HELP only unless
    something else answers it."""
    for word in account.config.extra_stop_keywords:
        for kind, words in (("start", account.start_words), ("help", account.help_words)):
            taken = sorted(whole_forms(fold(word)) & words)
            if taken:
                return (f"stop keyword {word!r} is the {kind} word {taken[0]!r}: compliance "
                        f"reads stop words first, so a contact's {taken[0].upper()} would opt "
                        "them out; take it out of extra_stop_keywords")
    return None


def _shadowed_keyword(account: CompiledAccount) -> tuple[int, str] | None:
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
                return number, (
                    f"keyword {rule.rule.keyword!r} is the {kind} word {word!r}, which "
                    f"compliance answers before any rule: the rule would never answer a "
                    f"message that says it; {fix} (or, for a button's payload, write "
                    f"postback = {rule.rule.keyword!r})")
    return None


def _answered_first(account: CompiledAccount, rule: Callable[[int], str]
                    ) -> tuple[int, str] | None:
    """A rule an earlier one always answers first, on its channels: first match wins, so it
    would never answer (its reply, written for something, never sent). Only what is certain:
    the same keyword or payload, a prefix that begins with an earlier one; a keyword rule
    answers a button's payload too. Not regexes, nor a keyword an earlier prefix begins
    ("«Price»" is the keyword "price", and begins with no prefix "price"). Looked up, not
    compared pair by pair: an account may have thousands of keyword rules (product codes)."""
    rules = account.rules
    keywords: dict[str, list[int]] = {}  # folded keyword: the rules with it, by number
    postbacks: dict[str, list[int]] = {}
    prefixes: list[int] = []
    for later, this in enumerate(rules, start=1):
        def first(numbers: Iterable[int], this: CompiledRule = this) -> int | None:
            """The first of these earlier rules answering on each of this one's channels."""
            return next((n for n in numbers
                         if rules[n - 1].rule.channel in (None, this.rule.channel)), None)

        # The same words: one of the two is spare. Longer ones after shorter: the longer
        # was meant to answer first ("order status" before "order 12").
        problem, fix = None, "take one of them out, or give each its channel"
        if this.keyword is not None:
            if (earlier := first(keywords.get(this.keyword, []))) is not None:
                problem = f"keyword {this.rule.keyword!r} is that of {rule(earlier)}"
            keywords.setdefault(this.keyword, []).append(later)
        elif this.postback is not None:
            if (earlier := first(postbacks.get(this.postback, []))) is not None:
                problem = f"postback {this.rule.postback!r} is that of {rule(earlier)}"
            elif (earlier := first(keywords.get(this.postback, []))) is not None:
                problem = (f"postback {this.rule.postback!r} is the keyword of "
                           f"{rule(earlier)}, which answers that payload")
                fix = "put this rule before it (the button then gets this reply, a text that)"
            postbacks.setdefault(this.postback, []).append(later)
        elif this.prefix is not None:
            prefix = this.prefix
            if (earlier := first(n for n in prefixes
                                 if prefix.startswith(rules[n - 1].prefix or ""))) is not None:
                problem = (f"prefix {this.rule.prefix!r} begins with {rule(earlier)}'s prefix "
                           f"{rules[earlier - 1].rule.prefix!r}")
                if prefix != rules[earlier - 1].prefix:
                    fix = "put this rule before it, or give each its channel"
            prefixes.append(later)
        if problem is not None:
            return later, (f"{problem}: rule {earlier} answers every message this rule would, "
                           f"first; {fix}")
    return None


def _describe(exc: ValidationError, rule: Callable[[int], str]) -> str:
    parts = []
    for error in exc.errors():
        location = list(error["loc"])
        if len(location) >= 2 and location[0] == "rules" and isinstance(location[1], int):
            location[:2] = [rule(location[1] + 1)]  # people count rules from 1
        where = ".".join(str(p) for p in location)
        parts.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(parts)


def load_rules(path: Path) -> RuleSet:
    try:
        # Without the byte order mark some Windows editors put first: tomllib refuses it as
        # "Invalid statement (at line 1, column 1)", which names nothing to fix.
        text = path.read_text(encoding="utf-8-sig")
        data = tomllib.loads(text)
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
    return parse_rules(data, str(path), text)
