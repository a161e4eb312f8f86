"""Where a rule is in the rules file, for its errors: tomllib gives no positions, so the line of
the rule's [[accounts.<name>.rules]] header is found in the text, and checked, or none is said;
for an account's own settings, the line of its [accounts.<name>] header.

Rules written inline (rules = [{...}, ...]) get no line: a `{` is no reliable landmark.
"""

from __future__ import annotations

import tomllib
from typing import Any

# Each a parse of the text before the rule: an error naming hundreds of rules names the
# lines of the first ones only.
MAX_LOOKUPS = 20


class RuleLines:
    """The lines of one rules file's rule headers, looked up as errors name rules."""

    def __init__(self, text: str, data: dict[str, Any]) -> None:
        # Lines as editors count them: at "\n" (str.splitlines would also cut at characters
        # a TOML string may hold, U+2028 or a form feed, and count lines no editor shows).
        self.lines = text.split("\n")
        self.data = data
        self._headers: dict[str, list[int]] = {}
        self._lookups = 0

    def line_of(self, account: str, number: int) -> int | None:
        """The line (from 1) of the header of `account`'s rule `number` (from 1)."""
        headers = self._headers.get(account)
        if headers is None:
            headers = self._headers[account] = [
                n for n, line in enumerate(self.lines)
                if _is_header(line, {"accounts": {account: {"rules": [{}]}}})]
        # One header per rule, or a header-like line is text inside a multi-line string.
        if len(headers) != len(_rules_of(self.data, account)) or not 0 < number <= len(headers):
            return None
        at = headers[number - 1]
        # And the text before it is whole TOML holding the rules before this one: the line
        # is no text inside a multi-line string, but this rule's header.
        before = self._before(at)
        return at + 1 if before is not None and \
            len(_rules_of(before, account)) == number - 1 else None

    def account_line(self, account: str) -> int | None:
        """The line (from 1) of the account's [accounts.<name>] header, if it has one."""
        headers = [n for n, line in enumerate(self.lines)
                   if _is_header(line, {"accounts": {account: {}}})]
        # A table is defined once: two such lines, and one is text inside a string.
        if len(headers) != 1 or self._before(headers[0]) is None:
            return None
        return headers[0] + 1

    def _before(self, line: int) -> dict[str, Any] | None:
        """The text before `line`, read, if it is whole TOML: `line` then begins a statement."""
        if self._lookups >= MAX_LOOKUPS:
            return None
        self._lookups += 1
        try:
            return tomllib.loads("\n".join(self.lines[:line]))
        except (tomllib.TOMLDecodeError, RecursionError, ValueError):
            return None


def _is_header(line: str, read_as: dict[str, Any]) -> bool:
    """A table's header that tomllib, reading the line alone, reads as `read_as`: however it
    is written (quoted, spaced, with a comment)."""
    if not line.lstrip().startswith("["):
        return False
    try:
        read = tomllib.loads(line.rstrip("\r"))  # a CRLF file's lines, cut at "\n"
    except (tomllib.TOMLDecodeError, RecursionError, ValueError):
        return False
    return read == read_as


def _rules_of(data: dict[str, Any], account: str) -> list[Any]:
    accounts = data.get("accounts")
    fields = accounts.get(account) if isinstance(accounts, dict) else None
    rules = fields.get("rules") if isinstance(fields, dict) else None
    return rules if isinstance(rules, list) else []
