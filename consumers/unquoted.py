"""What the sender's log lines may say of a provider's text: without the message's text or
the recipient's number, which a refusal or an echoed request may quote."""

from __future__ import annotations

import functools
import re

from switchboard.commands import OutboundCommand


def unquoted(text: str, command: OutboundCommand) -> str:
    """A provider's text as a log line may carry it: without the message's text or the
    recipient, which a refusal or an echoed request may quote. The text first: it may hold the
    number, and would not be found once that is masked. Then, in the first _LOGGED_CHARS only
    (a provider's text has no length limit, and a log line needs no more), the number however
    written, and as the command spells it (a user id; a number run into other digits).
    Results keep the text as it is: they carry both anyway."""
    if command.text and len(command.text) >= 4:
        text = text.replace(command.text, "<text>")
    if len(text) > _LOGGED_CHARS:
        text = f"{text[:_LOGGED_CHARS]}... ({len(text) - _LOGGED_CHARS} more characters)"
    if (echoed := _echoed_number(command.to)) is not None:  # before the spelling: `00` too
        text = echoed.sub("<recipient>", text)
    for quoted in (command.to, command.to.lstrip("+")):
        if len(quoted) >= 4:
            text = text.replace(quoted, "<recipient>")
    return text


_LOGGED_CHARS = 2000
# Between a number's digits as providers write it: spaces, dashes, dots, slashes, brackets,
# and the trunk 0 some write in brackets after the country code (`+41 (0)79`).
# Possessive, the bracketed 0 tried first: written `(?:[\s.\-/()]|\(0\))*`, a run of `(0)`
# could be split many ways, and each was tried at each place the number could start.
_SEPARATOR = r"(?:\(0\)|[\s.\-/()])*+"
# A number echoed is known by its last digits: the ones before them may be left out (national
# format) or changed (`00` for `+`, a trunk 0 for the country code). Seven: fewer match too
# many other numbers (codes, amounts, dates); no subscriber number is shorter.
_TAIL_DIGITS = 7
_number_like = re.compile(r"\+?[0-9][0-9\s.\-/()]*").fullmatch


@functools.lru_cache(maxsize=256)
def _echoed_number(to: str) -> re.Pattern[str] | None:
    """What finds a recipient's number in a provider's text however it is written there: its
    last 7 digits, led by any end of the digits before them, or by `+`, `00` or `0`, each digit
    apart from the next by separators, and no digit right before or after. None for a `to` that
    is no number of 7 digits or more (a user key, a short code)."""
    digits = "".join(char for char in to if char.isdigit())
    if _number_like(to) is None or len(digits) < _TAIL_DIGITS:
        return None
    lead, tail = digits[:-_TAIL_DIGITS], digits[-_TAIL_DIGITS:]
    leads = "|".join(_SEPARATOR.join(lead[start:]) for start in range(len(lead)))
    pattern = (rf"(?<![0-9])(?:(?:\+|00|0){_SEPARATOR})?"
               + (rf"(?:(?:{leads}){_SEPARATOR})?" if lead else "")
               + _SEPARATOR.join(tail) + "(?![0-9])")
    return re.compile(pattern)

